"""The write path of the span store: one transaction per batch.

:meth:`WritePath.write_spans` stores a batch and, in the same transaction, brings the
per-trace summaries, the service index, the tag index, the operation list,
the per-edge aggregates and the pattern tables up to date. It returns after the commit.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_PRODUCER,
    STATUS_ERROR,
    Resource,
    Span,
    SpanLink,
)
from collectors.store import patterns, tag_index
from collectors.store import rows as _rows
from collectors.store.bulk import adding, insert_ignoring_duplicates, lock_traces, select_in, upsert
from collectors.store.contracts import EDGE_BUCKET_NS, StoreError, WriteResult
from collectors.store.contracts import first_line as _first_line
from collectors.store.schema import (
    attribute_keys,
    edges,
    operations,
    resources,
    spans,
    trace_services,
    trace_summaries,
    unpaired_consumers,
)


WRITE_ATTEMPTS = 3
"""Tries of a batch's transaction when PostgreSQL aborts it to break a deadlock or a
serialization conflict (the write path takes its locks in one order, so this is rare)."""
_TRANSIENT = {"40P01", "40001"}


class WritePath:
    """Writes of :class:`collectors.store.SpanStore` (a mixin; the store supplies the
    engine, caches and transactions)."""

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
            # Everything that needs no database (row encoding, index entries, aggregates)
            # is done before taking the write lock, so several workers overlap it and the
            # lock is held only for the statements.
            rows = {k: _rows.span_values(s, resource_ids[id(s.resource)], key_ids) for k, s in unique.items()}
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                prepared = _prepare(list(unique.values()), [], received_ns)
                try:
                    with self._write() as conn:
                        new_ops, inserted = self._write_in(conn, dict(unique), rows, prepared, received_ns)
                    break
                except sa.exc.DBAPIError as err:
                    if attempt == WRITE_ATTEMPTS or getattr(err.orig, "sqlstate", None) not in _TRANSIENT:
                        raise
        except sa.exc.SQLAlchemyError as err:
            raise StoreError(f"could not store the batch: {_first_line(err)}") from err
        self._known_operations.update(new_ops)
        if self._checkpointer is None:
            self._start_checkpointer()
        return WriteResult(inserted, offered - inserted)

    def _write_in(
        self,
        conn: Connection,
        unique: dict[tuple[str, str], Span],
        rows: dict[tuple[str, str], tuple],
        prepared: _Prepared,
        received_ns: int,
    ) -> tuple[set[tuple[str, str, int]], int]:
        """Write the batch's new spans and what they add; return the operations not known
        before and how many spans were new."""
        trace_keys = {bytes.fromhex(t) for t, _ in unique}
        # A consumer's link pairs it with a producer span of another trace: hold that
        # trace too, so the producer's batch and this one see each other's rows.
        linked = {bytes.fromhex(lk.trace_id) for s in unique.values() if s.kind == KIND_CONSUMER for lk in s.links}
        lock_traces(conn, list(trace_keys | linked))
        # Services already recorded per stored trace: which traces exist, and what the
        # summary upsert merges with.
        existing = {
            trace_id: _rows.loads(services)
            for trace_id, services in select_in(
                conn, trace_summaries, ("trace_id", "services"), "trace_id", list(trace_keys)
            )
        }
        if existing:
            # Some traces have spans stored already: drop spans already stored (a retry),
            # and pair the new spans with the stored ones for edges.
            old_spans = self._stored_spans(conn, list(existing))
            retried = {(x.trace_id, x.span_id) for x in old_spans} & unique.keys()
            for key in retried:
                del unique[key]
            if not unique:
                return set(), 0
            if retried:
                rows = {k: rows[k] for k in unique}
                prepared = _prepare(list(unique.values()), old_spans, received_ns)
            else:  # the same spans: only their edges pair differently with the stored ones
                prepared.edges, prepared.edge_stats, prepared.by_id = _edges(list(unique.values()), old_spans)
        new = list(unique.values())
        insert_ignoring_duplicates(conn, spans, _rows.SPAN_COLUMNS, list(rows.values()))
        summaries = prepared.summaries
        if existing:
            summaries = [_with_stored_services(row, existing) for row in summaries]
        upsert(conn, trace_summaries, _SUMMARY_COLUMNS, ("trace_id",), _SUMMARY_SETS, summaries)
        insert_ignoring_duplicates(conn, trace_services, ("service", "start_ns", "trace_id"), prepared.services)
        tag_index.write(conn, prepared.tags)
        new_ops = {(s.service, s.name, s.kind) for s in new} - self._known_operations
        if new_ops:
            insert_ignoring_duplicates(conn, operations, ("service", "name", "kind"), sorted(new_ops))
        producers = [s for s in new if s.kind == KIND_PRODUCER]
        if producers:  # before this batch's own consumers are recorded as waiting
            _pair_waiting_consumers(conn, producers, prepared)
        links = [(s, lk) for s in new if s.kind == KIND_CONSUMER for lk in s.links]
        if links:
            self._add_linked_edges(conn, links, prepared)
        upsert(
            conn,
            edges,
            _EDGE_COLUMNS,
            ("parent", "child", "bucket_ns"),
            _EDGE_SETS,
            [(*k, *v) for k, v in prepared.edges.items()],
        )
        patterns.write_edge_stats(conn, prepared.edge_stats)
        patterns.write_pattern_rows(conn, prepared.patterns)
        return new_ops, len(unique)

    def _stored_spans(self, conn: Connection, trace_keys: list[bytes]) -> list[_Lite]:
        rows = conn.execute(sa.select(*_LITE_COLUMNS).where(spans.c.trace_id.in_(trace_keys)))
        return [_lite(r) for r in rows]

    def _resolve_ids(self, batch: list[Span]) -> tuple[dict[int, int], dict[str, int]]:
        """Row ids of the batch's resources (by id() of the Resource) and attribute keys.

        Served from this process's caches; only resources or keys never seen before cost
        a (short, separate) write transaction.
        """
        digests: dict[int, str] = {}
        by_digest: dict[str, Resource] = {}
        for s in batch:
            if id(s.resource) not in digests:
                digest = digests[id(s.resource)] = _rows.resource_hash(s.resource)
                by_digest[digest] = s.resource
        keys: set[str] = set()
        for s in batch:
            keys.update(s.attributes)
        new_resources = {d: r for d, r in by_digest.items() if d not in self._resource_ids}
        new_keys = sorted(keys - self._key_ids.keys())
        if new_resources or new_keys:
            # The caches learn the new ids only once they are committed: ids of a
            # transaction that rolls back (a deadlock, a lost connection) never existed.
            with self._write() as conn:
                resource_ids = self._insert_resources(conn, new_resources)
                key_ids = _insert_keys(conn, new_keys)
            with self._lock:
                self._resource_ids.update(resource_ids)
                self._key_ids.update(key_ids)
                self._key_names.update({v: k for k, v in key_ids.items()})
        return {rid: self._resource_ids[d] for rid, d in digests.items()}, self._key_ids

    def _insert_resources(self, conn: Connection, new: dict[str, Resource]) -> dict[str, int]:
        """Row ids of resources (by digest), inserting those not stored yet, in digest order."""
        out: dict[str, int] = {}
        for digest in sorted(new):
            conn.execute(
                self._insert(resources).on_conflict_do_nothing(index_elements=["hash"]),
                _rows.resource_row(new[digest], digest),
            )
            out[digest] = conn.execute(sa.select(resources.c.id).where(resources.c.hash == digest)).scalar_one()
        return out

    def _add_linked_edges(self, conn: Connection, links: list[tuple[Span, SpanLink]], prepared: _Prepared) -> None:
        """Count producer -> consumer edges for new CONSUMER spans that link to their producer.

        Messaging consumers usually start a trace of their own and link to the producing
        span (OpenTelemetry's messaging conventions), so there is no parent to pair with.
        A consumer whose producer has not arrived is recorded in ``unpaired_consumers``;
        the producer's batch pairs it (:func:`_pair_waiting_consumers`).
        """
        found = dict(prepared.by_id)
        wanted = {(lk.trace_id, lk.span_id) for _, lk in links} - set(found)
        if wanted:
            rows = conn.execute(
                sa.select(*_LITE_COLUMNS).where(
                    spans.c.trace_id.in_({bytes.fromhex(t) for t, _ in wanted}),
                    spans.c.span_id.in_({bytes.fromhex(sp) for _, sp in wanted}),
                )
            )
            found.update(((x.trace_id, x.span_id), x) for x in map(_lite, rows))
        waiting = []
        for consumer, link in links:
            producer = found.get((link.trace_id, link.span_id))
            duration, failed = consumer.end_ns - consumer.start_ns, consumer.status_code == STATUS_ERROR
            if producer is None:
                waiting.append(
                    (
                        bytes.fromhex(link.span_id),
                        bytes.fromhex(link.trace_id),
                        bytes.fromhex(consumer.trace_id),
                        bytes.fromhex(consumer.span_id),
                        consumer.service,
                        consumer.start_ns,
                        duration,
                        int(failed),
                    )
                )
            elif producer.kind == KIND_PRODUCER:
                _count_async_edge(prepared, producer.service, consumer.service, consumer.start_ns, duration, failed)
        insert_ignoring_duplicates(conn, unpaired_consumers, _UNPAIRED_COLUMNS, waiting)


@dataclass(slots=True)
class _Lite:
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    kind: int
    status_code: int
    start_ns: int
    duration_ns: int


_LITE_COLUMNS = (
    spans.c.trace_id,
    spans.c.span_id,
    spans.c.parent_span_id,
    spans.c.service,
    spans.c.kind,
    spans.c.status_code,
    spans.c.start_ns,
    spans.c.duration_ns,
)


def _lite(r: sa.Row) -> _Lite:
    """A stored span, as much of it as edges need, from a row of _LITE_COLUMNS."""
    return _Lite(
        r.trace_id.hex(),
        r.span_id.hex(),
        r.parent_span_id.hex() if r.parent_span_id else "",
        r.service,
        r.kind,
        r.status_code,
        r.start_ns,
        r.duration_ns,
    )


@dataclass(slots=True)
class _Prepared:
    """What a batch adds besides its span rows, computed without the database."""

    summaries: list[tuple]
    services: list[tuple[str, int, bytes]]
    tags: list[tuple[int, bytes, bytes]]
    edges: dict[tuple[str, str, int], list[int]]
    edge_stats: patterns.EdgeAccumulator
    patterns: patterns.PatternRows
    by_id: dict[tuple[str, str], _Lite]


_SUMMARY_COLUMNS = (
    "trace_id",
    "root_span_id",
    "root_service",
    "root_name",
    "start_ns",
    "end_ns",
    "span_count",
    "error_count",
    "services",
    "received_ns",
)
# The earliest known span stands in for the root until the real root arrives.
_TAKE_NEW_ROOT = "NEW.root_span_id IS NOT NULL OR (OLD.root_span_id IS NULL AND NEW.start_ns < OLD.start_ns)"
_SUMMARY_SETS = (
    ("root_span_id", "COALESCE(NEW.root_span_id, OLD.root_span_id)"),
    ("root_service", f"CASE WHEN {_TAKE_NEW_ROOT} THEN NEW.root_service ELSE OLD.root_service END"),
    ("root_name", f"CASE WHEN {_TAKE_NEW_ROOT} THEN NEW.root_name ELSE OLD.root_name END"),
    ("start_ns", "LEAST(OLD.start_ns, NEW.start_ns)"),
    ("end_ns", "GREATEST(OLD.end_ns, NEW.end_ns)"),
    ("span_count", "OLD.span_count + NEW.span_count"),
    ("error_count", "OLD.error_count + NEW.error_count"),
    ("services", "NEW.services"),
)
_EDGE_COLUMNS = ("parent", "child", "bucket_ns", "call_count", "error_count", "duration_sum_ns", "duration_max_ns")
_EDGE_SETS = adding(["call_count", "error_count", "duration_sum_ns"], ["duration_max_ns"])


def _prepare(new: list[Span], old: list[_Lite], received_ns: int) -> _Prepared:
    """Summaries, index entries, edges and pattern rows of the new spans of a batch;
    ``old`` are the stored spans of the batch's traces, for edges across batches."""
    per_trace: dict[str, list[Span]] = defaultdict(list)
    for s in new:
        per_trace[s.trace_id].append(s)
    summaries = []
    first_start: dict[tuple[str, bytes], int] = {}
    for trace_id, group in per_trace.items():
        key = bytes.fromhex(trace_id)
        root = None
        first = group[0]
        end = first.end_ns
        errors = 0
        for s in group:
            if not s.parent_span_id and root is None:
                root = s
            if s.start_ns < first.start_ns:
                first = s
            if s.end_ns > end:
                end = s.end_ns
            errors += s.status_code == STATUS_ERROR
            k = (s.service, key)
            if s.start_ns < first_start.get(k, 1 << 63):
                first_start[k] = s.start_ns
        stand_in = root or first
        services = sorted({s.service for s in group})
        summaries.append(
            (
                key,
                bytes.fromhex(root.span_id) if root else None,
                stand_in.service,
                stand_in.name,
                first.start_ns,
                end,
                len(group),
                errors,
                _rows.dumps(services),
                received_ns,
            )
        )
    services_index = [(service, start, trace) for (service, trace), start in first_start.items()]
    edges_agg, stats, by_id = _edges(new, old)
    return _Prepared(
        summaries, services_index, tag_index.rows_for(new), edges_agg, stats, patterns.pattern_rows(new), by_id
    )


def _edges(
    new: list[Span], old: list[_Lite]
) -> tuple[dict[tuple[str, str, int], list[int]], patterns.EdgeAccumulator, dict[tuple[str, str], _Lite]]:
    """Service-to-service calls between parent and child spans, counted once: when the
    later of the two arrives."""
    # New spans take part as they are (a Span has every field of a _Lite).
    by_id: dict[tuple[str, str], _Lite | Span] = {(x.trace_id, x.span_id): x for x in old}
    new_by_id = {(x.trace_id, x.span_id): x for x in new}
    by_id.update(new_by_id)
    new_keys = new_by_id.keys()
    agg: dict[tuple[str, str, int], list[int]] = {}
    stats = patterns.EdgeAccumulator()
    stats.add_peers(new)
    for child in by_id.values():
        if not child.parent_span_id:
            continue
        parent = by_id.get((child.trace_id, child.parent_span_id))
        if parent is None or parent.service == child.service:
            continue
        if (child.trace_id, child.span_id) not in new_keys and (parent.trace_id, parent.span_id) not in new_keys:
            continue  # counted when the later of the two arrived
        client_side = parent.kind == KIND_CLIENT
        duration = parent.duration_ns if client_side else child.duration_ns
        failed = child.status_code == STATUS_ERROR or (client_side and parent.status_code == STATUS_ERROR)
        _count_edge(agg, (parent.service, child.service, child.start_ns), duration, failed)
        stats.add(
            parent.service, child.service, patterns.edge_mode(parent.kind, child.kind), child.start_ns, duration, failed
        )
    return agg, stats, by_id


_UNPAIRED_COLUMNS = (
    "producer_span_id",
    "producer_trace_id",
    "consumer_trace_id",
    "consumer_span_id",
    "service",
    "start_ns",
    "duration_ns",
    "failed",
)


def _pair_waiting_consumers(conn: Connection, producers: list[Span], prepared: _Prepared) -> None:
    """Count the async edges of consumers stored before these producer spans arrived,
    and forget them (each is paired once)."""
    by_key = {(bytes.fromhex(p.span_id), bytes.fromhex(p.trace_id)): p for p in producers}
    rows = select_in(conn, unpaired_consumers, _UNPAIRED_COLUMNS, "producer_span_id", [k[0] for k in by_key])
    paired = []
    for span_id, trace_id, consumer_trace, consumer_span, service, start_ns, duration, failed in rows:
        producer = by_key.get((span_id, trace_id))
        if producer is None:
            continue
        _count_async_edge(prepared, producer.service, service, start_ns, duration, bool(failed))
        paired.append((span_id, trace_id, consumer_trace, consumer_span))
    if paired:
        u = unpaired_consumers.c
        conn.execute(
            sa.delete(unpaired_consumers).where(
                u.producer_span_id == sa.bindparam("s"),
                u.producer_trace_id == sa.bindparam("t"),
                u.consumer_trace_id == sa.bindparam("ct"),
                u.consumer_span_id == sa.bindparam("cs"),
            ),
            [{"s": s, "t": t, "ct": ct, "cs": cs} for s, t, ct, cs in paired],
        )


def _count_async_edge(
    prepared: _Prepared, producer: str, consumer: str, start_ns: int, duration: int, failed: bool
) -> None:
    """A producer -> consumer call; none between spans of one service."""
    if producer == consumer:
        return
    _count_edge(prepared.edges, (producer, consumer, start_ns), duration, failed)
    prepared.edge_stats.add(producer, consumer, patterns.MODE_ASYNC, start_ns, duration, failed)


def _insert_keys(conn: Connection, keys: list[str]) -> dict[str, int]:
    """Row ids of span-attribute keys (sorted), inserting those not stored yet."""
    if not keys:
        return {}
    insert_ignoring_duplicates(conn, attribute_keys, ("key",), [(k,) for k in keys])
    found = {}
    for i in range(0, len(keys), 500):
        stmt = sa.select(attribute_keys.c.key, attribute_keys.c.id).where(attribute_keys.c.key.in_(keys[i : i + 500]))
        found.update({r.key: r.id for r in conn.execute(stmt)})
    return found


def _count_edge(
    agg: dict[tuple[str, str, int], list[int]], call: tuple[str, str, int], duration: int, failed: bool
) -> None:
    parent, child, start_ns = call
    a = agg.setdefault((parent, child, start_ns - start_ns % EDGE_BUCKET_NS), [0, 0, 0, 0])
    a[0] += 1
    a[1] += failed
    a[2] += duration
    a[3] = max(a[3], duration)


def _with_stored_services(row: tuple, existing: dict[bytes, list[str]]) -> tuple:
    """A summary row whose services include those already recorded for its trace."""
    stored = existing.get(row[0])
    if not stored:
        return row
    merged = sorted(set(stored) | set(_rows.loads(row[8])))
    return (*row[:8], _rows.dumps(merged), row[9])
