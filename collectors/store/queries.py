"""The read side of the span store: traces, searches, services and dependencies."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import (
    KIND_SERVER,
    STATUS_ERROR,
    STATUS_OK,
    Edge,
    Resource,
    Span,
    SpanOutline,
    TraceSummary,
)
from collectors.store import rows as _rows
from collectors.store import tag_index
from collectors.store.contracts import (
    MAX_QUERY_LIMIT,
    MAX_SORT_SCAN,
    SORT_ORDERS,
    TraceList,
    TraceQuery,
)
from collectors.store.database import Database
from collectors.store.patterns.conventions import PAIRED_MODES, in_window
from collectors.store.fragments import Fragment
from collectors.store.schema import (
    edge_stats,
    operations,
    trace_summaries,
)
from collectors.store.span_fragments import SpanFragments

_SCAN_CHUNK = 200
_MIN_CHECKED = 16
"""Candidates read at a time, at least, when a search checks them against their spans."""
ENTRY_LOOKBACK_NS = 60 * 1_000_000_000
"""How long before a window :meth:`TraceReader.entry_calls` looks for traces whose later
spans fall in it."""

_SORT_KEYS = {
    "recent": lambda t: (t.start_ns,),
    "slowest": lambda t: (t.duration_ns, t.start_ns),
    "spans": lambda t: (t.span_count, t.start_ns),
    "errors": lambda t: (t.error_count, t.start_ns),
}


class TraceReader:
    """Reads of traces, trace searches, services, operations and dependencies."""

    def __init__(self, database: Database, fragments: SpanFragments) -> None:
        self._database = database
        self._fragments = fragments

    def get_trace(self, trace_id: str) -> list[Span]:
        """All stored spans of a trace, ordered by start time; [] for an unknown id."""
        with self._database.connect() as conn:
            out = self._fragments.trace_spans(conn, [bytes.fromhex(trace_id)])
        out.sort(key=lambda s: (s.start_ns, s.span_id))
        return out

    def get_trace_outline(self, trace_id: str) -> list[SpanOutline]:
        """Every stored span of a trace without attributes, events or links, ordered by
        start time; [] for an unknown id."""
        with self._database.connect() as conn:
            out = self._fragments.outlines(conn, bytes.fromhex(trace_id))
        out.sort(key=attrgetter("start_ns", "span_id"))
        return out

    def get_summaries(self, trace_ids: list[str]) -> list[TraceSummary]:
        """Summaries of the given traces, in the order asked; unknown ids are left out."""
        keys = [bytes.fromhex(t) for t in trace_ids]
        with self._database.connect() as conn:
            found = {
                r.trace_id: _summary(r)
                for r in conn.execute(sa.select(trace_summaries).where(trace_summaries.c.trace_id.in_(keys)))
            }
        return [found[k] for k in keys if k in found]

    def previous_trace(self, trace_id: str) -> TraceSummary | None:
        """The latest trace that started before this one with the same root service and
        operation (ties on start broken by trace id); None when there is none or the
        trace is unknown."""
        key = bytes.fromhex(trace_id)
        t = trace_summaries.c
        with self._database.connect() as conn:
            this = conn.execute(sa.select(t.root_service, t.root_name, t.start_ns).where(t.trace_id == key)).first()
            if this is None:
                return None
            earlier = sa.or_(t.start_ns < this.start_ns, sa.and_(t.start_ns == this.start_ns, t.trace_id < key))
            stmt = (
                sa.select(trace_summaries)
                # start_ns <= start alone lets the start index seek rather than scan from the newest.
                .where(t.start_ns <= this.start_ns, earlier)
                .where(t.root_service == this.root_service, t.root_name == this.root_name)
                .order_by(t.start_ns.desc(), t.trace_id.desc())
                .limit(1)
            )
            row = conn.execute(stmt).first()
        return _summary(row) if row is not None else None

    def list_services(self) -> list[str]:
        """Names of every service that sent a span, sorted."""
        with self._database.connect() as conn:
            names = conn.execute(sa.select(operations.c.service).distinct()).scalars().all()
        return sorted(names)

    def list_operations(self, service: str | None = None) -> list[tuple[str, str, int]]:
        """(service, operation name, span kind) triples, sorted; all services when None."""
        stmt = sa.select(operations.c.service, operations.c.name, operations.c.kind)
        if service is not None:
            stmt = stmt.where(operations.c.service == service)
        with self._database.connect() as conn:
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
        wanted = limit if query.sort == "recent" else MAX_SORT_SCAN
        matched: list[bytes] = []
        truncated = False
        with self._database.connect() as conn:
            for candidates in self._candidates(conn, query):
                # Candidates checked against their spans are read a few more than still
                # wanted at a time, so a search decodes about as many traces as it returns.
                step = max(_MIN_CHECKED, 2 * (wanted - len(matched))) if needs_spans else len(candidates)
                for at in range(0, len(candidates), step):
                    chunk = candidates[at : at + step]
                    keep = self._filter_chunk(conn, chunk, query, needs_spans)
                    for key in chunk:
                        if key in keep:
                            if len(matched) == wanted:
                                truncated = True
                                break
                            matched.append(key)
                    if truncated:
                        break
                    step = max(_MIN_CHECKED, 2 * (wanted - len(matched))) if needs_spans else step
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
                yield from tag_index.candidates(conn, key, value, q.start_ns, q.end_ns)
                return
        elif q.service:
            yield from tag_index.candidates(conn, tag_index.SERVICE_KEY, q.service, q.start_ns, q.end_ns)
            return
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
        t = trace_summaries.c
        stmt = sa.select(t.trace_id, t.error_count, t.services).where(
            t.trace_id.in_(chunk), t.start_ns <= q.end_ns, t.end_ns >= q.start_ns
        )
        rows = conn.execute(stmt).all()
        if q.service:  # a candidate by its service's hash may be a collision: the summary knows
            rows = [r for r in rows if q.service in _rows.loads(r.services)]
        alive = {r.trace_id: r.error_count for r in rows}
        if q.status == "error":
            alive = {k: e for k, e in alive.items() if e > 0}
        elif q.status == "ok":
            alive = {k: e for k, e in alive.items() if e == 0}
        if not needs_spans or not alive:
            return set(alive)
        # One span must meet every span-level condition (as in Jaeger): read the
        # candidates' fragments and look.
        fragments = self._fragments.read(conn, alive)
        names: Mapping[int, str] = {}
        resources: Mapping[int, Resource] = {}
        if q.tags:
            names = self._fragments.key_names(conn, fragments)
            resources = self._fragments.resources(conn, fragments)
        keep: set[bytes] = set()
        for f in fragments:
            key = bytes.fromhex(f.trace_id)
            if key not in keep and _fragment_matches(f, q, names, resources):
                keep.add(key)
        return keep

    def dependencies(self, start_ns: int, end_ns: int) -> list[Edge]:
        """Service-to-service edges (calls paired from spans, synchronous or through links)
        with calls in the minutes overlapping [start_ns, end_ns], by parent and child."""
        c = edge_stats.c
        stmt = (
            sa.select(
                c.parent,
                c.child,
                sa.func.sum(c.call_count),
                sa.func.sum(c.error_count),
                sa.func.sum(c.duration_sum_ns),
                sa.func.max(c.duration_max_ns),
            )
            .where(c.mode.in_(PAIRED_MODES), *in_window(c.bucket_ns, start_ns, end_ns))
            .group_by(c.parent, c.child)
            .order_by(c.parent, c.child)
        )
        with self._database.connect() as conn:
            return [Edge(p, ch, int(n), int(e), int(d), int(m)) for p, ch, n, e, d, m in conn.execute(stmt)]

    def entry_calls(
        self, services: list[str], start_ns: int, end_ns: int, limit: int
    ) -> list[tuple[str, int, int, bool]]:
        """(service, start_ns, duration_ns, failed) of the SERVER spans of ``services`` that
        started in [start_ns, end_ns), oldest first, at most ``limit``.

        The traces are those of the summaries that overlap the window, took part in by one
        of the services, and began at most :data:`ENTRY_LOOKBACK_NS` before it."""
        t = trace_summaries.c
        stmt = sa.select(t.trace_id, t.services).where(
            t.start_ns >= start_ns - ENTRY_LOOKBACK_NS, t.start_ns < end_ns, t.end_ns >= start_ns
        )
        wanted = set(services)
        out: list[tuple[str, int, int, bool]] = []
        with self._database.connect() as conn:
            keys = [r.trace_id for r in conn.execute(stmt) if wanted.intersection(_rows.loads(r.services))]
            for f in self._fragments.read(conn, keys):
                c = f.columns()
                out.extend(
                    (service, start, duration, code == STATUS_ERROR)
                    for service, kind, start, duration, code in zip(
                        c["service"], c["kind"], c["start_ns"], c["duration_ns"], c["status_code"], strict=True
                    )
                    if kind == KIND_SERVER and service in wanted and start_ns <= start < end_ns
                )
        out.sort(key=lambda call: call[1])
        return out[:limit]

    def count_spans(self) -> int:
        """Number of spans stored (from the summaries, without scanning spans)."""
        with self._database.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.sum(trace_summaries.c.span_count), 0))).scalar_one()
            )

    def recent_traces(self, limit: int = 20) -> list[TraceSummary]:
        """The most recently started traces."""
        stmt = sa.select(trace_summaries).order_by(trace_summaries.c.start_ns.desc()).limit(min(limit, MAX_QUERY_LIMIT))
        with self._database.connect() as conn:
            return [_summary(r) for r in conn.execute(stmt)]



def _fragment_matches(f: Fragment, q: TraceQuery, names: Mapping[int, str], resources: Mapping[int, Resource]) -> bool:
    """Whether one span of the fragment meets every span-level condition of the query."""
    c = f.columns()
    attributes = f.attributes(names) if q.tags else None
    for i, (service, name, duration, status) in enumerate(
        zip(c["service"], c["name"], c["duration_ns"], c["status_code"], strict=True)
    ):
        if q.service and service != q.service:
            continue
        if q.operation and name != q.operation:
            continue
        if q.min_duration_ns is not None and duration < q.min_duration_ns:
            continue
        if q.max_duration_ns is not None and duration > q.max_duration_ns:
            continue
        if attributes is not None:
            resource = resources[c["resource_id"][i]]
            if not all(_tag_matches(k, v, attributes[i], resource, status) for k, v in q.tags.items()):
                continue
        return True
    return False


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
        services=tuple(_rows.loads(r.services)),
        received_ns=r.received_ns,
        failure_service=r.failure_service,
        failure_reason=r.failure_reason,
    )
