"""SpanStore: every write and query of the trace store, for SQLite and PostgreSQL.

The write path (:meth:`SpanStore.write_spans`) stores a batch of spans and, in the same
transaction, brings the per-trace summaries, the service and tag indexes, the operation
list and the per-edge aggregates up to date. It returns only after the commit.
Differences between SQLite and PostgreSQL live in the private helpers at the top.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from collectors.model import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_PRODUCER,
    STATUS_ERROR,
    STATUS_OK,
    Edge,
    Resource,
    Span,
    TraceSummary,
)
from collectors.store import patterns, tag_index
from collectors.store import rows as _rows
from collectors.store.bulk import insert_ignoring_duplicates
from collectors.store.schema import (
    attribute_buckets,
    attribute_keys,
    edges,
    metadata,
    operations,
    resources,
    spans,
    trace_attributes,
    trace_services,
    trace_summaries,
)

EDGE_BUCKET_NS = 60 * 1_000_000_000
"""Edge aggregates are kept per minute, so a dependency window is exact to the minute."""

MAX_QUERY_LIMIT = 1500
"""Hard upper bound on traces returned by one search, whatever the caller asks."""

_SCAN_CHUNK = 200

COMPACT_INTERVAL_S = 1.0
"""How often the background thread moves staged tag-index entries into the index."""

CHECKPOINT_INTERVAL_S = 5.0
WAL_TRUNCATE_BYTES = 32 * 1024 * 1024
"""SQLite's write-ahead log is truncated when it is found larger than this."""

log = logging.getLogger(__name__)

SORT_ORDERS = ("recent", "slowest", "spans", "errors")
"""The orders a trace search can return its results in."""

MAX_SORT_SCAN = 20_000
"""Matches examined at most for a sort other than ``recent``; beyond it the newest win."""

_SORT_KEYS = {
    "recent": lambda t: (t.start_ns,),
    "slowest": lambda t: (t.duration_ns, t.start_ns),
    "spans": lambda t: (t.span_count, t.start_ns),
    "errors": lambda t: (t.error_count, t.start_ns),
}


class StoreError(RuntimeError):
    """The store cannot be opened or cannot commit; the caller answers 503."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one :meth:`SpanStore.write_spans` call stored."""

    inserted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """A trace search. Times are nanoseconds; tags match span or resource attributes.

    A trace matches when one of its spans satisfies every span-level condition
    (service, operation, duration bounds, tags) at once, as in Jaeger; ``status``
    applies to the trace (``error``: it has an error span; ``ok``: it has none).
    ``sort`` is one of SORT_ORDERS: ``recent`` (newest start first), ``slowest``
    (longest trace first), ``spans`` (most spans first), ``errors`` (most errors first).
    """

    start_ns: int
    end_ns: int
    service: str | None = None
    operation: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    status: str = "any"
    limit: int = 20
    sort: str = "recent"


@dataclass(frozen=True, slots=True)
class TraceList:
    """Search results, most recent first; ``truncated`` says more traces matched."""

    traces: list[TraceSummary]
    truncated: bool


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one retention pass removed."""

    traces: int
    spans: int


class SpanStore:
    """The trace store over one SQLAlchemy engine (SQLite file or PostgreSQL).

    Safe to share between threads. Several processes may write to the same SQLite
    file: each write transaction takes SQLite's write lock up front (BEGIN IMMEDIATE),
    so the read-then-write of a batch is never interleaved with another writer.
    """

    def __init__(self, engine: Engine, *, background_compaction: bool = True) -> None:
        self.engine = engine
        self.background_compaction = background_compaction
        self.dialect = engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self._least = sa.func.least if self.dialect == "postgresql" else sa.func.min
        self._greatest = sa.func.greatest if self.dialect == "postgresql" else sa.func.max
        self._resource_ids: dict[str, int] = {}
        self._key_ids: dict[str, int] = {}
        self._key_names: dict[int, str] = {}
        self._known_operations: set[tuple[str, str, int]] = set()
        self._lock = threading.Lock()
        self._compactor: threading.Thread | None = None
        self._write_mutex = threading.Lock()
        self._lock_file = None
        self.tags_engine = engine
        if self.dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._lock_file = open(f"{engine.url.database}.writelock", "a")  # noqa: SIM115 (held for the store's life)
            database = Path(engine.url.database)
            self.tags_engine = _create_engine(f"sqlite:///{database.with_name(database.stem + '-tags.db')}")
        self._closing = threading.Event()

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True, background_compaction: bool = True) -> SpanStore:
        """Open (and by default create or upgrade) the store at a SQLAlchemy URL.

        With ``background_compaction`` the store starts a thread, at its first write, that
        compacts the tag index and checkpoints SQLite's log; without it, some other process
        must run :meth:`compact_forever` (``spyglass serve`` runs one indexer process).
        Raises StoreError with a one-line reason when the database cannot be reached.
        """
        from collectors.store.migrate import upgrade

        engine = _create_engine(url)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            if migrate:
                upgrade(engine)
            store = cls(engine, background_compaction=background_compaction)
            if store.tags_engine is not engine:
                store._prepare_tags_database()
        except sa.exc.SQLAlchemyError as err:
            engine.dispose()
            raise StoreError(f"cannot open the store at {_safe_url(url)}: {_first_line(err)}") from err
        return store

    def _prepare_tags_database(self) -> None:
        """Create the tag index's own SQLite file, and move into it index rows that an
        older release kept in the main database."""
        tag_tables = [trace_attributes, attribute_buckets]
        with self._tags_write() as tconn:
            metadata.create_all(tconn, tables=tag_tables)
        with self.engine.connect() as conn:
            legacy = conn.execute(sa.select(trace_attributes.c.bucket).limit(1)).first() is not None
        if legacy:
            with self._write() as conn, self._tags_write() as tconn:
                tag_index.move_legacy_rows(conn, tconn)

    def close(self) -> None:
        """Index what is staged, stop the compactor thread, release the connections."""
        self._closing.set()
        if self._compactor is not None:
            self._compactor.join(timeout=30)
        try:
            self.compact_tag_index()
        except StoreError as err:
            # The staged entries stay in the database; the next process to open it compacts them.
            log.warning("tag index left staged at close: %s", err)
        self.engine.dispose()
        if self.tags_engine is not self.engine:
            self.tags_engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()

    def compact_tag_index(self) -> int:
        """Move every staged tag-index entry into the index; returns the rows moved.

        Raises StoreError if the database refuses a transaction.
        """
        moved = 0
        try:
            while True:
                with self.engine.connect() as conn:
                    staged = tag_index.read_staged(conn)
                if not staged:
                    return moved
                with self._tags_write() as tconn:
                    moved += tag_index.insert_staged(tconn, staged)
                with self._write() as conn:
                    tag_index.delete_staged(conn, [i for i, _ in staged])
        except sa.exc.SQLAlchemyError as err:
            raise StoreError(f"could not compact the tag index: {_first_line(err)}") from err

    def _start_compactor(self) -> None:
        with self._lock:
            if self._compactor is None and self.background_compaction and not self._closing.is_set():
                self._compactor = threading.Thread(
                    target=self.compact_forever, args=(self._closing,), name="spyglass-tag-index", daemon=True
                )
                self._compactor.start()

    def compact_forever(self, stop: threading.Event) -> None:
        """Compact the tag index about once a second and checkpoint SQLite's log every few
        seconds, until ``stop`` is set. Errors are logged and retried."""
        last_checkpoint = time.monotonic()
        while not stop.wait(COMPACT_INTERVAL_S):
            try:
                self.compact_tag_index()
                if time.monotonic() - last_checkpoint >= CHECKPOINT_INTERVAL_S:
                    last_checkpoint = time.monotonic()
                    self.checkpoint(truncate_above=WAL_TRUNCATE_BYTES)
            except StoreError as err:
                log.warning("%s; retrying", err)

    # -- writes ---------------------------------------------------------------------------

    def write_spans(self, batch: Iterable[Span], received_ns: int | None = None) -> WriteResult:
        """Store spans, idempotently on (trace_id, span_id), and return after the commit.

        Spans already stored (an exporter's retry) are skipped and counted as
        duplicates; summaries, indexes and edges count each span once. Raises
        StoreError if the transaction cannot commit, in which case nothing of the
        batch is stored.
        """
        received_ns = received_ns or time.time_ns()
        unique: dict[tuple[str, str], Span] = {}
        for span in batch:
            unique.setdefault((span.trace_id, span.span_id), span)
        if not unique:
            return WriteResult(0, 0)
        offered = len(unique)
        try:
            resource_ids, key_ids = self._resolve_ids(list(unique.values()))
            # Encoding rows and index entries needs no lock: doing it before taking the
            # write lock lets several workers overlap it.
            rows = {k: _rows.span_values(s, resource_ids[id(s.resource)], key_ids) for k, s in unique.items()}
            payload = tag_index.payload_for(unique.values())
            with self._write() as conn:
                new_ops = self._write_in(conn, unique, rows, payload, received_ns)
        except sa.exc.SQLAlchemyError as err:
            raise StoreError(f"could not store the batch: {_first_line(err)}") from err
        self._known_operations.update(new_ops)
        if self._compactor is None:
            self._start_compactor()
        return WriteResult(len(unique), offered - len(unique))

    def _write_in(
        self,
        conn: Connection,
        unique: dict[tuple[str, str], Span],
        rows: dict[tuple[str, str], tuple],
        payload: bytes | None,
        received_ns: int,
    ) -> set[tuple[str, str, int]]:
        trace_keys = {bytes.fromhex(t) for t, _ in unique}
        existing = set(
            conn.execute(
                sa.select(trace_summaries.c.trace_id).where(trace_summaries.c.trace_id.in_(trace_keys))
            ).scalars()
        )
        old_spans: list[_Lite] = []
        if existing:
            old_rows = conn.execute(
                sa.select(
                    spans.c.trace_id,
                    spans.c.span_id,
                    spans.c.parent_span_id,
                    spans.c.service,
                    spans.c.kind,
                    spans.c.status_code,
                    spans.c.start_ns,
                    spans.c.duration_ns,
                ).where(spans.c.trace_id.in_(existing))
            )
            for r in old_rows:
                key = (r.trace_id.hex(), r.span_id.hex())
                unique.pop(key, None)
                old_spans.append(
                    _Lite(
                        key[0],
                        key[1],
                        r.parent_span_id.hex() if r.parent_span_id else "",
                        r.service,
                        r.kind,
                        r.status_code,
                        r.start_ns,
                        r.duration_ns,
                    )
                )
        if not unique:
            return set()
        new = list(unique.values())
        if len(unique) < len(rows):  # a retry: some spans were stored already
            rows = {k: rows[k] for k in unique}
            payload = tag_index.payload_for(new)
        insert_ignoring_duplicates(conn, spans, _rows.SPAN_COLUMNS, list(rows.values()))
        self._upsert_summaries(conn, new, received_ns)
        self._insert_indexes(conn, new, payload)
        new_ops = {(s.service, s.name, s.kind) for s in new} - self._known_operations
        if new_ops:
            stmt = self._insert(operations).on_conflict_do_nothing()
            conn.execute(stmt, [{"service": a, "name": b, "kind": c} for a, b, c in new_ops])
        self._upsert_edges(conn, new, old_spans)
        self._record_patterns(conn, new)
        return new_ops

    def _resolve_ids(self, batch: list[Span]) -> tuple[dict[int, int], dict[str, int]]:
        """Row ids of the batch's resources (by id() of the Resource) and attribute keys.

        Served from this process's caches; only resources or keys never seen before cost
        a (short, separate) write transaction.
        """
        digests: dict[int, str] = {}
        for s in batch:
            if id(s.resource) not in digests:
                digests[id(s.resource)] = _rows.resource_hash(s.resource)
        known_keys = self._key_ids
        if any(d not in self._resource_ids for d in digests.values()) or any(
            k not in known_keys for s in batch for k in s.attributes
        ):
            with self._write() as conn:
                self._resource_ids_for(conn, batch)
                self._key_ids_for(conn, batch)
        return {rid: self._resource_ids[d] for rid, d in digests.items()}, self._key_ids

    def _key_ids_for(self, conn: Connection, batch: list[Span]) -> dict[str, int]:
        """Ids of every span-attribute key in the batch, inserting keys not seen before."""
        known = self._key_ids
        missing = {k for s in batch for k in s.attributes if k not in known}
        if missing:
            insert_ignoring_duplicates(conn, attribute_keys, ("key",), [(k,) for k in sorted(missing)])
            found = {}
            ordered = sorted(missing)
            for i in range(0, len(ordered), 500):
                stmt = sa.select(attribute_keys.c.key, attribute_keys.c.id).where(
                    attribute_keys.c.key.in_(ordered[i : i + 500])
                )
                found.update({r.key: r.id for r in conn.execute(stmt)})
            with self._lock:
                known.update(found)
                self._key_names.update({v: k for k, v in found.items()})
        return known

    def key_names(self, conn: Connection, ids: set[int]) -> dict[int, str]:
        """Names of attribute key ids (every known id; unknown ones are read from the table)."""
        missing = ids.difference(self._key_names)
        if missing:
            rows = conn.execute(
                sa.select(attribute_keys.c.id, attribute_keys.c.key).where(attribute_keys.c.id.in_(missing))
            )
            with self._lock:
                for r in rows:
                    self._key_names[r.id] = r.key
        return self._key_names

    def _resource_ids_for(self, conn: Connection, batch: Iterable[Span]) -> dict[int, int]:
        """Map id(Resource) to its row id, inserting resources not seen before."""
        out: dict[int, int] = {}
        for span in batch:
            res = span.resource
            if id(res) in out:
                continue
            digest = _rows.resource_hash(res)
            rid = self._resource_ids.get(digest)
            if rid is None:
                conn.execute(
                    self._insert(resources).on_conflict_do_nothing(index_elements=["hash"]),
                    _rows.resource_row(res, digest),
                )
                rid = conn.execute(sa.select(resources.c.id).where(resources.c.hash == digest)).scalar_one()
                with self._lock:
                    self._resource_ids[digest] = rid
            out[id(res)] = rid
        return out

    def _upsert_summaries(self, conn: Connection, new: list[Span], received_ns: int) -> None:
        per_trace: dict[str, list[Span]] = defaultdict(list)
        for s in new:
            per_trace[s.trace_id].append(s)
        existing_services = {
            r.trace_id: json.loads(r.services)
            for r in conn.execute(
                sa.select(trace_summaries.c.trace_id, trace_summaries.c.services).where(
                    trace_summaries.c.trace_id.in_([bytes.fromhex(t) for t in per_trace])
                )
            )
        }
        values = []
        for trace_id, group in per_trace.items():
            key = bytes.fromhex(trace_id)
            roots = [s for s in group if not s.parent_span_id]
            first = min(group, key=lambda s: s.start_ns)
            root = roots[0] if roots else first
            services = sorted(set(existing_services.get(key, [])) | {s.service for s in group})
            values.append(
                {
                    "trace_id": key,
                    "root_span_id": bytes.fromhex(root.span_id) if roots else None,
                    "root_service": root.service,
                    "root_name": root.name,
                    "start_ns": first.start_ns,
                    "end_ns": max(s.end_ns for s in group),
                    "span_count": len(group),
                    "error_count": sum(1 for s in group if s.status_code == STATUS_ERROR),
                    "services": json.dumps(services, ensure_ascii=False),
                    "received_ns": received_ns,
                }
            )
        stmt = self._insert(trace_summaries)
        old, exc = trace_summaries.c, stmt.excluded
        # The earliest known span stands in for the root until the real root arrives.
        take_new_root = sa.or_(
            exc.root_span_id.is_not(None),
            sa.and_(old.root_span_id.is_(None), exc.start_ns < old.start_ns),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["trace_id"],
            set_={
                "root_span_id": sa.case((exc.root_span_id.is_not(None), exc.root_span_id), else_=old.root_span_id),
                "root_service": sa.case((take_new_root, exc.root_service), else_=old.root_service),
                "root_name": sa.case((take_new_root, exc.root_name), else_=old.root_name),
                "start_ns": self._least(old.start_ns, exc.start_ns),
                "end_ns": self._greatest(old.end_ns, exc.end_ns),
                "span_count": old.span_count + exc.span_count,
                "error_count": old.error_count + exc.error_count,
                "services": exc.services,
                "received_ns": old.received_ns,
            },
        )
        conn.execute(stmt, values)

    def _insert_indexes(self, conn: Connection, new: list[Span], payload: bytes | None) -> None:
        first_start: dict[tuple[str, bytes], int] = {}
        for s in new:
            key = (s.service, bytes.fromhex(s.trace_id))
            if s.start_ns < first_start.get(key, 1 << 63):
                first_start[key] = s.start_ns
        insert_ignoring_duplicates(
            conn,
            trace_services,
            ("service", "start_ns", "trace_id"),
            [(service, start, trace) for (service, trace), start in first_start.items()],
        )
        tag_index.stage(conn, payload)

    def _upsert_edges(self, conn: Connection, new: list[Span], old: list[_Lite]) -> None:
        lite_new = [
            _Lite(
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.service,
                s.kind,
                s.status_code,
                s.start_ns,
                s.end_ns - s.start_ns,
            )
            for s in new
        ]
        by_id = {(x.trace_id, x.span_id): x for x in old}
        by_id.update({(x.trace_id, x.span_id): x for x in lite_new})
        new_keys = {(x.trace_id, x.span_id) for x in lite_new}
        agg: dict[tuple[str, str, int], list[int]] = {}
        stats = patterns.EdgeAccumulator()
        stats.add_peers(new)
        for child in by_id.values():
            if not child.parent_span_id:
                continue
            parent = by_id.get((child.trace_id, child.parent_span_id))
            if parent is None or parent.service == child.service:
                continue
            ck = (child.trace_id, child.span_id)
            pk = (parent.trace_id, parent.span_id)
            if ck not in new_keys and pk not in new_keys:
                continue  # counted when the later of the two arrived
            client_side = parent.kind == KIND_CLIENT
            duration = parent.duration_ns if client_side else child.duration_ns
            failed = child.status_code == STATUS_ERROR or (client_side and parent.status_code == STATUS_ERROR)
            bucket = child.start_ns - child.start_ns % EDGE_BUCKET_NS
            a = agg.setdefault((parent.service, child.service, bucket), [0, 0, 0, 0])
            a[0] += 1
            a[1] += failed
            a[2] += duration
            a[3] = max(a[3], duration)
            stats.add(
                parent.service,
                child.service,
                patterns.edge_mode(parent.kind, child.kind),
                child.start_ns,
                duration,
                failed,
            )
        self._add_linked_edges(conn, new, by_id, agg, stats)
        patterns.write_edge_stats(conn, stats)
        if not agg:
            return
        stmt = self._insert(edges)
        old_c, exc = edges.c, stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["parent", "child", "bucket_ns"],
            set_={
                "call_count": old_c.call_count + exc.call_count,
                "error_count": old_c.error_count + exc.error_count,
                "duration_sum_ns": old_c.duration_sum_ns + exc.duration_sum_ns,
                "duration_max_ns": self._greatest(old_c.duration_max_ns, exc.duration_max_ns),
            },
        )
        conn.execute(
            stmt,
            [
                {
                    "parent": p,
                    "child": c,
                    "bucket_ns": b,
                    "call_count": v[0],
                    "error_count": v[1],
                    "duration_sum_ns": v[2],
                    "duration_max_ns": v[3],
                }
                for (p, c, b), v in agg.items()
            ],
        )

    def _add_linked_edges(
        self,
        conn: Connection,
        new: list[Span],
        by_id: dict[tuple[str, str], _Lite],
        agg: dict[tuple[str, str, int], list[int]],
        stats: patterns.EdgeAccumulator,
    ) -> None:
        """Count producer -> consumer edges for new CONSUMER spans that link to their producer.

        Messaging consumers usually start a trace of their own and link to the producing
        span (OpenTelemetry's messaging conventions), so there is no parent to pair with.
        A producer that arrives after its consumer is not paired.
        """
        links = [(s, lk) for s in new if s.kind == KIND_CONSUMER for lk in s.links]
        if not links:
            return
        wanted = {(lk.trace_id, lk.span_id) for _, lk in links} - set(by_id)
        found = dict(by_id)
        if wanted:
            rows = conn.execute(
                sa.select(
                    spans.c.trace_id,
                    spans.c.span_id,
                    spans.c.service,
                    spans.c.kind,
                    spans.c.status_code,
                    spans.c.start_ns,
                    spans.c.duration_ns,
                ).where(
                    spans.c.trace_id.in_({bytes.fromhex(t) for t, _ in wanted}),
                    spans.c.span_id.in_({bytes.fromhex(sp) for _, sp in wanted}),
                )
            )
            for r in rows:
                key = (r.trace_id.hex(), r.span_id.hex())
                found[key] = _Lite(key[0], key[1], "", r.service, r.kind, r.status_code, r.start_ns, r.duration_ns)
        for consumer, link in links:
            producer = found.get((link.trace_id, link.span_id))
            if producer is None or producer.kind != KIND_PRODUCER or producer.service == consumer.service:
                continue
            duration, failed = consumer.end_ns - consumer.start_ns, consumer.status_code == STATUS_ERROR
            bucket = consumer.start_ns - consumer.start_ns % EDGE_BUCKET_NS
            a = agg.setdefault((producer.service, consumer.service, bucket), [0, 0, 0, 0])
            a[0] += 1
            a[1] += failed
            a[2] += duration
            a[3] = max(a[3], duration)
            stats.add(producer.service, consumer.service, patterns.MODE_ASYNC, consumer.start_ns, duration, failed)

    def _record_patterns(self, conn: Connection, new: list[Span]) -> None:
        """Operation, instance, breaker and saga rows for the pattern views."""
        patterns.write_pattern_rows(conn, new)

    # -- reads ------------------------------------------------------------------------------

    def get_trace(self, trace_id: str) -> list[Span]:
        """All stored spans of a trace, ordered by start time; [] for an unknown id."""
        key = bytes.fromhex(trace_id)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(spans).where(spans.c.trace_id == key)).all()
            resources_by_id = self._resources(conn, {r.resource_id for r in rows})
            names = self.key_names(conn, set().union(*(_rows.attribute_key_ids(r.attributes) for r in rows)))
        out = [_rows.span_from_row(r, resources_by_id[r.resource_id], names) for r in rows]
        out.sort(key=lambda s: (s.start_ns, s.span_id))
        return out

    def get_summaries(self, trace_ids: list[str]) -> list[TraceSummary]:
        """Summaries of the given traces, in the order asked; unknown ids are left out."""
        keys = [bytes.fromhex(t) for t in trace_ids]
        with self.engine.connect() as conn:
            found = {
                r.trace_id: _summary(r)
                for r in conn.execute(sa.select(trace_summaries).where(trace_summaries.c.trace_id.in_(keys)))
            }
        return [found[k] for k in keys if k in found]

    def list_services(self) -> list[str]:
        """Names of every service that sent a span, sorted."""
        with self.engine.connect() as conn:
            names = conn.execute(sa.select(operations.c.service).distinct()).scalars().all()
        return sorted(names)

    def list_operations(self, service: str | None = None) -> list[tuple[str, str, int]]:
        """(service, operation name, span kind) triples, sorted; all services when None."""
        stmt = sa.select(operations.c.service, operations.c.name, operations.c.kind)
        if service is not None:
            stmt = stmt.where(operations.c.service == service)
        with self.engine.connect() as conn:
            return sorted((r.service, r.name, r.kind) for r in conn.execute(stmt))

    def find_traces(self, query: TraceQuery) -> TraceList:
        """Traces matching the query in ``query.sort`` order, at most ``query.limit``.

        The limit is capped at MAX_QUERY_LIMIT. Candidates come from the most selective
        index available (a tag, the service, or the time index), newest first; span-level
        conditions are then checked against each candidate's spans. Orders other than
        ``recent`` rank the newest MAX_SORT_SCAN matches (``truncated`` is set when more
        matched); ties are broken by the newer start. Raises ValueError for an unknown sort.
        """
        if query.sort not in _SORT_KEYS:
            raise ValueError(f"sort must be one of {', '.join(SORT_ORDERS)}, got {query.sort!r}")
        limit = max(1, min(query.limit, MAX_QUERY_LIMIT))
        needs_spans = bool(
            query.operation or query.tags or query.min_duration_ns is not None or query.max_duration_ns is not None
        )
        if any(key != "error" for key in query.tags):
            with self.engine.connect() as conn:
                pending = tag_index.has_staged(conn)
            if pending:
                self.compact_tag_index()
        wanted = limit if query.sort == "recent" else MAX_SORT_SCAN
        matched: list[bytes] = []
        truncated = False
        with self.engine.connect() as conn:
            for chunk in self._candidates(conn, query):
                keep = self._filter_chunk(conn, chunk, query, needs_spans)
                for key in chunk:
                    if key in keep:
                        if len(matched) == wanted:
                            truncated = True
                            break
                        matched.append(key)
                if truncated:
                    break
            summaries = {}
            for i in range(0, len(matched), 900):
                part = matched[i : i + 900]
                for r in conn.execute(sa.select(trace_summaries).where(trace_summaries.c.trace_id.in_(part))):
                    summaries[r.trace_id] = _summary(r)
        result = [summaries[k] for k in matched if k in summaries]
        result.sort(key=_SORT_KEYS[query.sort], reverse=True)
        if len(result) > limit:
            result, truncated = result[:limit], True
        return TraceList(result, truncated)

    def _candidates(self, conn: Connection, q: TraceQuery) -> Iterator[list[bytes]]:
        """Yield chunks of distinct candidate trace ids, newest first (keyset paging)."""
        if q.tags:
            key, value = next(iter(q.tags.items()))
            if key == "error":
                table, where = trace_summaries, [trace_summaries.c.error_count > 0] if value == "true" else []
            else:
                with self.tags_engine.connect() as tconn:
                    yield from tag_index.candidates(tconn, key, value, q.start_ns, q.end_ns)
                return
        elif q.service:
            table, where = trace_services, [trace_services.c.service == q.service]
        else:
            table, where = trace_summaries, []
        if table is trace_summaries and q.status == "error":
            where.append(trace_summaries.c.error_count > 0)
        seen: set[bytes] = set()
        cursor: tuple[int, bytes] | None = None
        while True:
            stmt = sa.select(table.c.start_ns, table.c.trace_id).where(
                table.c.start_ns >= q.start_ns, table.c.start_ns <= q.end_ns, *where
            )
            if cursor is not None:
                stmt = stmt.where(
                    sa.or_(
                        table.c.start_ns < cursor[0],
                        sa.and_(table.c.start_ns == cursor[0], table.c.trace_id < cursor[1]),
                    )
                )
            rows = conn.execute(
                stmt.order_by(table.c.start_ns.desc(), table.c.trace_id.desc()).limit(_SCAN_CHUNK)
            ).all()
            if not rows:
                return
            cursor = (rows[-1].start_ns, rows[-1].trace_id)
            chunk = []
            for r in rows:
                if r.trace_id not in seen:
                    seen.add(r.trace_id)
                    chunk.append(r.trace_id)
            if chunk:
                yield chunk
            if len(rows) < _SCAN_CHUNK:
                return

    def _filter_chunk(self, conn: Connection, chunk: list[bytes], q: TraceQuery, needs_spans: bool) -> set[bytes]:
        """The ids in ``chunk`` that exist and satisfy the query."""
        stmt = sa.select(trace_summaries.c.trace_id, trace_summaries.c.error_count).where(
            trace_summaries.c.trace_id.in_(chunk),
            trace_summaries.c.start_ns <= q.end_ns,
            trace_summaries.c.end_ns >= q.start_ns,
        )
        alive = {r.trace_id: r.error_count for r in conn.execute(stmt)}
        if q.status == "error":
            alive = {k: e for k, e in alive.items() if e > 0}
        elif q.status == "ok":
            alive = {k: e for k, e in alive.items() if e == 0}
        if not needs_spans:
            return set(alive)
        cols = [
            spans.c.trace_id,
            spans.c.service,
            spans.c.name,
            spans.c.duration_ns,
            spans.c.status_code,
            spans.c.attributes,
            spans.c.resource_id,
        ]
        stmt = sa.select(*cols).where(spans.c.trace_id.in_(list(alive)))
        if q.service:
            stmt = stmt.where(spans.c.service == q.service)
        if q.operation:
            stmt = stmt.where(spans.c.name == q.operation)
        if q.min_duration_ns is not None:
            stmt = stmt.where(spans.c.duration_ns >= q.min_duration_ns)
        if q.max_duration_ns is not None:
            stmt = stmt.where(spans.c.duration_ns <= q.max_duration_ns)
        rows = conn.execute(stmt).all()
        if not q.tags:
            return {r.trace_id for r in rows}
        res = self._resources(conn, {r.resource_id for r in rows})
        names = self.key_names(conn, set().union(*(_rows.attribute_key_ids(r.attributes) for r in rows)))
        keep = set()
        for r in rows:
            if r.trace_id in keep:
                continue
            attrs = _rows.decode_attributes(r.attributes, names)
            if all(_tag_matches(k, v, attrs, res[r.resource_id], r.status_code) for k, v in q.tags.items()):
                keep.add(r.trace_id)
        return keep

    def dependencies(self, start_ns: int, end_ns: int) -> list[Edge]:
        """Service-to-service edges with calls starting in [start_ns, end_ns], by minute."""
        c = edges.c
        stmt = (
            sa.select(
                c.parent,
                c.child,
                sa.func.sum(c.call_count),
                sa.func.sum(c.error_count),
                sa.func.sum(c.duration_sum_ns),
                sa.func.max(c.duration_max_ns),
            )
            .where(c.bucket_ns >= start_ns - start_ns % EDGE_BUCKET_NS, c.bucket_ns <= end_ns)
            .group_by(c.parent, c.child)
            .order_by(c.parent, c.child)
        )
        with self.engine.connect() as conn:
            return [Edge(p, ch, int(n), int(e), int(d), int(m)) for p, ch, n, e, d, m in conn.execute(stmt)]

    def count_spans(self) -> int:
        """Number of spans stored (from the summaries, without scanning spans)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.sum(trace_summaries.c.span_count), 0))).scalar_one()
            )

    def recent_traces(self, limit: int = 20) -> list[TraceSummary]:
        """The most recently started traces."""
        stmt = sa.select(trace_summaries).order_by(trace_summaries.c.start_ns.desc()).limit(min(limit, MAX_QUERY_LIMIT))
        with self.engine.connect() as conn:
            return [_summary(r) for r in conn.execute(stmt)]

    def _resources(self, conn: Connection, ids: set[int]) -> dict[int, Resource]:
        if not ids:
            return {}
        rows = conn.execute(sa.select(resources).where(resources.c.id.in_(ids)))
        return {r.id: _rows.resource_from_row(r) for r in rows}

    # -- retention ----------------------------------------------------------------------------

    def prune(self, *, older_than_ns: int | None = None, max_spans: int | None = None, chunk: int = 200) -> PruneResult:
        """Delete whole traces first received before ``older_than_ns``, then the oldest
        received traces until at most ``max_spans`` spans remain.

        Works in small transactions of ``chunk`` traces so ingest is never blocked for
        long. Index rows of deleted traces are removed lazily (searches ignore them).
        """
        removed_traces = removed_spans = 0
        excess = 0
        if max_spans is not None:
            excess = max(0, self.count_spans() - max_spans)
        while True:
            stmt = sa.select(trace_summaries.c.trace_id, trace_summaries.c.span_count, trace_summaries.c.received_ns)
            stmt = stmt.order_by(trace_summaries.c.received_ns, trace_summaries.c.trace_id).limit(chunk)
            with self.engine.connect() as conn:
                candidates = conn.execute(stmt).all()
            victims = []
            for r in candidates:
                expired = older_than_ns is not None and r.received_ns < older_than_ns
                if not expired and excess <= 0:
                    break
                victims.append(r.trace_id)
                excess -= r.span_count
                removed_spans += r.span_count
            if not victims:
                break
            with self._write() as conn:
                conn.execute(sa.delete(spans).where(spans.c.trace_id.in_(victims)))
                conn.execute(sa.delete(trace_summaries).where(trace_summaries.c.trace_id.in_(victims)))
            removed_traces += len(victims)
            if len(victims) < len(candidates):
                break
        if removed_traces:
            self._drop_stale_index_rows()
        return PruneResult(removed_traces, removed_spans)

    def _drop_stale_index_rows(self) -> None:
        """Delete index and edge rows older than the oldest trace still stored."""
        with self.engine.connect() as conn:
            oldest = conn.execute(sa.select(sa.func.min(trace_summaries.c.start_ns))).scalar()
        with self._tags_write() as tconn:
            tag_index.drop_before(tconn, oldest)
        with self._write() as conn:
            patterns.drop_stale_rows(conn, oldest)
            if oldest is None:
                for table in (trace_services, edges):
                    conn.execute(sa.delete(table))
                return
            conn.execute(sa.delete(trace_services).where(trace_services.c.start_ns < oldest))
            conn.execute(sa.delete(edges).where(edges.c.bucket_ns < oldest - oldest % EDGE_BUCKET_NS))

    def checkpoint(self, truncate_above: int = 0) -> None:
        """Fold SQLite's write-ahead log back into the database.

        A passive checkpoint never waits for writers; when the log file is still larger
        than ``truncate_above`` bytes afterwards, a TRUNCATE checkpoint (which briefly
        waits for the writer) shrinks it, so several writers cannot grow it without bound.
        Raises StoreError when the database refuses. Does nothing on PostgreSQL.
        """
        if self.dialect != "sqlite":
            return
        wal = Path(self.engine.url.database or "").with_name(Path(self.engine.url.database or "").name + "-wal")
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                if wal.exists() and wal.stat().st_size > truncate_above:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except sa.exc.SQLAlchemyError as err:
            raise StoreError(f"could not checkpoint the write-ahead log: {_first_line(err)}") from err

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction: SQLite's write lock is taken at BEGIN, not at first write.

        On SQLite, writers first queue on a thread lock and a lock file beside the
        database: SQLite's own busy handler polls with sleeps of up to 100 ms, which under
        contention leaves the database idle and ingest latency high; a blocking lock hands
        over at once, to threads of this process and to other processes alike.
        """
        with self._writer_turn(), self.engine.connect() as conn:
            conn = conn.execution_options(spyglass_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _tags_write(self) -> Iterator[Connection]:
        """A write transaction on the tag index (the main database on PostgreSQL)."""
        if self.tags_engine is self.engine:
            with self._write() as conn:
                yield conn
            return
        with self.tags_engine.connect() as conn:
            conn = conn.execution_options(spyglass_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        if self._lock_file is None:
            yield
            return
        with self._write_mutex:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class _Lite:
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    kind: int
    status_code: int
    start_ns: int
    duration_ns: int


def _tag_matches(key: str, value: str, attrs: dict, resource: Resource, status_code: int) -> bool:
    if key == "error":
        return (status_code == STATUS_ERROR) == (value == "true")
    if key == "otel.status_code":
        return {STATUS_ERROR: "ERROR", STATUS_OK: "OK"}.get(status_code, "UNSET") == value
    for source in (attrs, resource.attributes):
        if key in source and _rows.tag_text(source[key]) == value:
            return True
    return False


def _summary(r: Any) -> TraceSummary:
    return TraceSummary(
        trace_id=r.trace_id.hex(),
        root_service=r.root_service,
        root_name=r.root_name,
        start_ns=r.start_ns,
        end_ns=r.end_ns,
        span_count=r.span_count,
        error_count=r.error_count,
        services=tuple(json.loads(r.services)),
        received_ns=r.received_ns,
    )


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8, max_overflow=16
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so writes can BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA journal_size_limit=67108864")
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("spyglass_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return sa.create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__
