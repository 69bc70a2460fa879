"""The write path of the span store: one transaction per batch.

:meth:`WritePath.write_spans` stores a batch and, in the same transaction, brings the
per-trace summaries, the service index, the tag index, the operation list,
the per-edge aggregates and the pattern tables up to date. It returns after the commit.
"""

from __future__ import annotations

import json
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
    Span,
)
from collectors.store import patterns, tag_index
from collectors.store import rows as _rows
from collectors.store.bulk import insert_ignoring_duplicates
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
)


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
            # Encoding rows and index entries needs no lock: doing it before taking the
            # write lock lets several workers overlap it.
            rows = {k: _rows.span_values(s, resource_ids[id(s.resource)], key_ids) for k, s in unique.items()}
            tags = tag_index.rows_for(unique.values())
            with self._write() as conn:
                new_ops = self._write_in(conn, unique, rows, tags, received_ns)
        except sa.exc.SQLAlchemyError as err:
            raise StoreError(f"could not store the batch: {_first_line(err)}") from err
        self._known_operations.update(new_ops)
        if self._checkpointer is None:
            self._start_checkpointer()
        return WriteResult(len(unique), offered - len(unique))

    def _write_in(
        self,
        conn: Connection,
        unique: dict[tuple[str, str], Span],
        rows: dict[tuple[str, str], tuple],
        tags: list[tuple[int, bytes, bytes]],
        received_ns: int,
    ) -> set[tuple[str, str, int]]:
        trace_keys = {bytes.fromhex(t) for t, _ in unique}
        # Services already recorded per stored trace: which traces exist, and what the
        # summary upsert merges with.
        existing = {
            r.trace_id: json.loads(r.services)
            for r in conn.execute(
                sa.select(trace_summaries.c.trace_id, trace_summaries.c.services).where(
                    trace_summaries.c.trace_id.in_(trace_keys)
                )
            )
        }
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
                ).where(spans.c.trace_id.in_(list(existing)))
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
            tags = tag_index.rows_for(new)
        insert_ignoring_duplicates(conn, spans, _rows.SPAN_COLUMNS, list(rows.values()))
        self._upsert_summaries(conn, new, existing, received_ns)
        self._insert_indexes(conn, new, tags)
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

    def _upsert_summaries(
        self, conn: Connection, new: list[Span], existing_services: dict[bytes, list[str]], received_ns: int
    ) -> None:
        per_trace: dict[str, list[Span]] = defaultdict(list)
        for s in new:
            per_trace[s.trace_id].append(s)
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

    def _insert_indexes(self, conn: Connection, new: list[Span], tags: list[tuple[int, bytes, bytes]]) -> None:
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
        tag_index.write(conn, tags, self._insert)

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
