"""Service and edge traffic: per-minute edge, operation and instance stats with latency histograms.

Edges (parent/child span pairs and the peers client and producer spans name) are counted
by :class:`EdgeAccumulator`; entry spans (server, consumer, root) by the batch's pattern
rows. The reads feed the service graph, the service and edge pages and the registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import (
    HISTOGRAM_BUCKETS,
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_PRODUCER,
    EdgeStats,
    Histogram,
    InstanceActivity,
    OperationTraffic,
    ServiceMinute,
    Span,
    TraceSummary,
    histogram_index,
)
from collectors.store.bulk import adding, upsert
from collectors.store.contracts import TraceQuery
from collectors.store.patterns.conventions import (
    BUCKET_NS,
    DB_NAME,
    DB_NAMESPACE,
    DB_SYSTEM,
    DISCOVERY_SERVICE,
    MESSAGING_DESTINATION,
    MESSAGING_SYSTEM,
    MODE_ASYNC,
    MODE_LOOKUP,
    MODE_NAMES,
    MODE_PEER_DB,
    MODE_PEER_LOOKUP,
    MODE_PEER_QUEUE,
    MODE_PEER_SERVICE,
    MODE_SYNC,
    PEER_SERVICE,
    SERVICE_INSTANCE_ID,
    RATE_LIMIT,
    RATE_LIMIT_WINDOW,
    http_status,
    in_window,
    judge_call,
    whole_number,
)
from collectors.store.rows import dumps as json_text
from collectors.store.schema import (
    HISTOGRAM_COLUMNS,
    edge_stats,
    instance_stats,
    operation_stats,
    trace_summaries,
)

if TYPE_CHECKING:
    from collectors.store.database import Database
    from collectors.store.queries import TraceReader


# -- writes (inside SpanStore.write_spans' transaction) ------------------------------------------


class EdgeAccumulator:
    """Collects edge-stats rows for one batch; flushed with :func:`write_edge_stats`.

    Besides the counts, each row keeps up to EXEMPLARS trace ids of its calls (as Tempo's
    service graph keeps exemplars), so that the edge page lists traces without pairing
    spans again: a call made through a span link has no parent a query could follow.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int, int], list[int]] = {}
        self.exemplars: dict[tuple[str, str, int, int], list[str]] = {}

    def add(
        self,
        parent: str,
        child: str,
        mode: int,
        start_ns: int,
        duration_ns: int,
        failed: bool,
        trace_id: str,
        throttled: bool = False,
    ) -> None:
        """Count one call, made in trace ``trace_id`` (the callee's span's trace); a
        throttled call (HTTP 429) is counted apart from the failed ones."""
        key = (parent, child, mode, start_ns - start_ns % BUCKET_NS)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0] * (_ROW_HISTOGRAM + HISTOGRAM_BUCKETS)
            self.exemplars[key] = [trace_id]
        else:
            kept = self.exemplars[key]
            if len(kept) < EXEMPLARS and trace_id not in kept:
                kept.append(trace_id)
        _count(row, duration_ns, failed, throttled)

    def add_peers(self, new: Iterable[Span]) -> None:
        """Count calls from client and producer spans to peers named by their attributes."""
        for s in new:
            if s.kind not in (KIND_CLIENT, KIND_PRODUCER):
                continue
            peer = peer_of(s.attributes, s.kind)
            if peer is not None:
                failed, throttled = judge_call(s.is_error, http_status(s.attributes), caller=True)
                self.add(s.service, peer[0], peer[1], s.start_ns, s.duration_ns, failed, s.trace_id, throttled)


_ROW_HISTOGRAM = 5
"""Accumulated stats rows are [count, errors, throttled, duration sum, duration max,
*histogram]: the histogram starts at this index."""


def _count(row: list[int], duration_ns: int, failed: bool, throttled: bool) -> None:
    row[0] += 1
    row[1] += bool(failed)
    row[2] += bool(throttled)
    row[3] += duration_ns
    row[4] = max(row[4], duration_ns)
    row[_ROW_HISTOGRAM + histogram_index(duration_ns)] += 1


def edge_mode(parent_kind: int, child_kind: int, lookup: bool = False) -> int:
    """Asynchronous when the call goes through a producer and a consumer span; a lookup
    (a span of the call carries ``discovery.service``) when it asks a registry; else
    synchronous."""
    if parent_kind == KIND_PRODUCER or child_kind == KIND_CONSUMER:
        return MODE_ASYNC
    return MODE_LOOKUP if lookup else MODE_SYNC


def peer_of(attrs: dict[str, Any], kind: int) -> tuple[str, int] | None:
    """The (node, mode) a client or producer span names as its peer, if any."""
    db = attrs.get(DB_SYSTEM)
    if isinstance(db, str) and db:
        namespace = attrs.get(DB_NAMESPACE) or attrs.get(DB_NAME)
        name = attrs.get(PEER_SERVICE) or (f"{db}:{namespace}" if isinstance(namespace, str) and namespace else db)
        return str(name), MODE_PEER_DB
    mq = attrs.get(MESSAGING_SYSTEM)
    if isinstance(mq, str) and mq and kind == KIND_PRODUCER:
        dest = attrs.get(MESSAGING_DESTINATION)
        return (f"{mq}:{dest}" if isinstance(dest, str) and dest else mq), MODE_PEER_QUEUE
    peer = attrs.get(PEER_SERVICE)
    if isinstance(peer, str) and peer:
        return peer, MODE_PEER_LOOKUP if DISCOVERY_SERVICE in attrs else MODE_PEER_SERVICE
    return None


_EDGE_STATS_COLUMNS = (
    "parent",
    "child",
    "mode",
    "bucket_ns",
    "call_count",
    "error_count",
    "throttled_count",
    "duration_sum_ns",
    "duration_max_ns",
    *HISTOGRAM_COLUMNS,
    "exemplars",
)
EXEMPLARS = 5
"""Trace ids kept per edge, mode and minute."""
_EXEMPLAR_TEXT = EXEMPLARS * 33  # 32 hex digits and a space each
_EDGE_STATS_SETS = (
    *adding(
        ["call_count", "error_count", "throttled_count", "duration_sum_ns", *HISTOGRAM_COLUMNS], ["duration_max_ns"]
    ),
    (
        "exemplars",
        f"CASE WHEN length(OLD.exemplars) >= {_EXEMPLAR_TEXT} THEN OLD.exemplars"
        f" ELSE substr(OLD.exemplars || NEW.exemplars, 1, {_EXEMPLAR_TEXT}) END",
    ),
)
_OPERATION_STATS_COLUMNS = (
    "service",
    "name",
    "bucket_ns",
    "request_count",
    "error_count",
    "throttled_count",
    "duration_sum_ns",
    "duration_max_ns",
    *HISTOGRAM_COLUMNS,
    "rate_limit",
    "rate_limit_window_ms",
)
_OPERATION_STATS_SETS = (
    *adding(
        ["request_count", "error_count", "throttled_count", "duration_sum_ns", *HISTOGRAM_COLUMNS], ["duration_max_ns"]
    ),
    ("rate_limit", "COALESCE(NEW.rate_limit, OLD.rate_limit)"),
    (
        "rate_limit_window_ms",
        "CASE WHEN NEW.rate_limit IS NULL THEN OLD.rate_limit_window_ms ELSE NEW.rate_limit_window_ms END",
    ),
)
_INSTANCE_STATS_COLUMNS = ("service", "instance_id", "bucket_ns", "request_count", "error_count", "last_seen_ns")
_INSTANCE_STATS_SETS = adding(["request_count", "error_count"], ["last_seen_ns"])


def write_edge_stats(conn: Connection, acc: EdgeAccumulator) -> None:
    """Add the accumulated edge rows to ``edge_stats``."""
    upsert(
        conn,
        edge_stats,
        _EDGE_STATS_COLUMNS,
        ("parent", "child", "mode", "bucket_ns"),
        _EDGE_STATS_SETS,
        [(*k, *v, "".join(f"{t} " for t in acc.exemplars[k])) for k, v in acc.rows.items()],
    )


def collect_entry(
    s: Span, bucket: int, ops: dict[tuple[str, str, int], list[int]], inst: dict[tuple[str, str, int], list[int]]
) -> None:
    """Count an entry span (server, consumer or root) in the operation and instance stats;
    a throttled request (HTTP 429) is counted apart from the failed ones."""
    row = ops.get((s.service, s.name, bucket))
    if row is None:
        row = ops[(s.service, s.name, bucket)] = [0] * (_ROW_HISTOGRAM + HISTOGRAM_BUCKETS) + [None, None]
    failed, throttled = judge_call(s.is_error, http_status(s.attributes))
    _count(row, s.duration_ns, failed, throttled)
    limit = whole_number(s.attributes.get(RATE_LIMIT))
    if limit is not None:
        row[-2], row[-1] = limit, whole_number(s.attributes.get(RATE_LIMIT_WINDOW))
    instance = s.resource.attributes.get(SERVICE_INSTANCE_ID)
    if instance is not None:
        irow = inst.setdefault((s.service, str(instance), bucket), [0, 0, 0])
        irow[0] += 1
        irow[1] += failed
        irow[2] = max(irow[2], s.end_ns)


def write_entry_stats(
    conn: Connection,
    operations: dict[tuple[str, str, int], list[int]],
    instances: dict[tuple[str, str, int], list[int]],
) -> None:
    """Add a batch's operation and instance rows to ``operation_stats`` and ``instance_stats``."""
    upsert(
        conn,
        operation_stats,
        _OPERATION_STATS_COLUMNS,
        ("service", "name", "bucket_ns"),
        _OPERATION_STATS_SETS,
        [(*k, *v) for k, v in operations.items()],
    )
    upsert(
        conn,
        instance_stats,
        _INSTANCE_STATS_COLUMNS,
        ("service", "instance_id", "bucket_ns"),
        _INSTANCE_STATS_SETS,
        [(*k, *v) for k, v in instances.items()],
    )


# -- reads ---------------------------------------------------------------------------------------


class TrafficReader:
    """Reads of the edge, operation and instance stats, summed over a window."""

    def __init__(self, database: Database, traces: TraceReader) -> None:
        self._database = database
        self._traces = traces

    def find_edge_stats(self, start_ns: int, end_ns: int) -> list[EdgeStats]:
        """Edges with calls in minutes overlapping [start_ns, end_ns], by parent, child, mode."""
        c = edge_stats.c
        stmt = (
            sa.select(
                c.parent,
                c.child,
                c.mode,
                sa.func.sum(c.call_count),
                sa.func.sum(c.error_count),
                sa.func.sum(c.duration_sum_ns),
                sa.func.max(c.duration_max_ns),
                sa.func.sum(c.throttled_count),
                *_hist_sums(edge_stats),
            )
            .where(*in_window(c.bucket_ns, start_ns, end_ns))
            .group_by(c.parent, c.child, c.mode)
            .order_by(c.parent, c.child, c.mode)
        )
        with self._database.connect() as conn:
            return [
                EdgeStats(
                    r[0],
                    r[1],
                    MODE_NAMES.get(r[2], "sync"),
                    int(r[3]),
                    int(r[4]),
                    int(r[5]),
                    _histogram(r[8:], r[6]),
                    int(r[7]),
                )
                for r in conn.execute(stmt)
            ]

    def find_operation_traffic(self, start_ns: int, end_ns: int, service: str | None = None) -> list[OperationTraffic]:
        """Entry-span traffic per (service, operation) over the window, sorted by service and
        name; only ``service``'s operations when given."""
        c = operation_stats.c
        stmt = sa.select(
            c.service,
            c.name,
            sa.func.sum(c.request_count),
            sa.func.sum(c.error_count),
            sa.func.sum(c.duration_sum_ns),
            sa.func.max(c.duration_max_ns),
            sa.func.sum(c.throttled_count),
            sa.func.max(c.rate_limit),
            sa.func.max(c.rate_limit_window_ms),
            *_hist_sums(operation_stats),
        )
        stmt = stmt.where(*in_window(c.bucket_ns, start_ns, end_ns))
        if service is not None:
            stmt = stmt.where(c.service == service)
        stmt = stmt.group_by(c.service, c.name).order_by(c.service, c.name)
        with self._database.connect() as conn:
            return [
                OperationTraffic(
                    r[0],
                    r[1],
                    int(r[2]),
                    int(r[3]),
                    int(r[4]),
                    _histogram(r[9:], r[5]),
                    int(r[6]),
                    None if r[7] is None else int(r[7]),
                    None if r[8] is None else int(r[8]),
                )
                for r in conn.execute(stmt)
            ]

    def find_service_minutes(self, service: str, start_ns: int, end_ns: int) -> list[ServiceMinute]:
        """The service's traffic in each minute of the window that had any, oldest first."""
        c = operation_stats.c
        stmt = (
            sa.select(
                c.bucket_ns,
                sa.func.sum(c.request_count),
                sa.func.sum(c.error_count),
                sa.func.sum(c.duration_sum_ns),
                sa.func.max(c.duration_max_ns),
                sa.func.sum(c.throttled_count),
                *_hist_sums(operation_stats),
            )
            .where(c.service == service, *in_window(c.bucket_ns, start_ns, end_ns))
            .group_by(c.bucket_ns)
            .order_by(c.bucket_ns)
        )
        with self._database.connect() as conn:
            return [
                ServiceMinute(service, r[0], int(r[1]), int(r[2]), int(r[3]), _histogram(r[6:], r[4]), int(r[5]))
                for r in conn.execute(stmt)
            ]

    def find_instance_activity(self, start_ns: int, end_ns: int) -> list[InstanceActivity]:
        """Instances that served requests in the window, by service and instance id."""
        c = instance_stats.c
        stmt = (
            sa.select(
                c.service,
                c.instance_id,
                sa.func.sum(c.request_count),
                sa.func.sum(c.error_count),
                sa.func.max(c.last_seen_ns),
            )
            .where(*in_window(c.bucket_ns, start_ns, end_ns))
            .group_by(c.service, c.instance_id)
            .order_by(c.service, c.instance_id)
        )
        with self._database.connect() as conn:
            return [InstanceActivity(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in conn.execute(stmt)]

    def find_service_traces(
        self, service: str, start_ns: int, end_ns: int, *, failing: bool, limit: int = 10
    ) -> list[TraceSummary]:
        """Traces the service took part in within the window: the slowest, or the failing
        ones (those with an error span) most recent first. At most ``limit``."""
        if failing:
            query = TraceQuery(start_ns=start_ns, end_ns=end_ns, service=service, status="error", limit=limit)
            return self._traces.find_traces(query).traces
        sm = trace_summaries.c
        # The summary's services are a JSON list: the service's JSON text, quotes included,
        # is in it exactly when the service is.
        stmt = (
            sa.select(sm.trace_id)
            .where(sm.start_ns >= start_ns, sm.start_ns <= end_ns)
            .where(sm.services.contains(json_text([service])[1:-1], autoescape=True))
            .order_by((sm.end_ns - sm.start_ns).desc())
            .limit(limit)
        )
        with self._database.connect() as conn:
            ids = [r.hex() for r in conn.execute(stmt).scalars()]
        return self._traces.get_summaries(ids)

    def find_edge_traces(
        self, parent: str, child: str, start_ns: int, end_ns: int, limit: int = 20
    ) -> list[TraceSummary]:
        """Traces in which ``parent`` called ``child`` in the window (in any mode): the
        exemplars kept at ingest, newest minute first, at most ``limit``; traces since
        deleted by retention are left out."""
        c = edge_stats.c
        stmt = (
            sa.select(c.exemplars)
            .where(c.parent == parent, c.child == child, c.exemplars != "", *in_window(c.bucket_ns, start_ns, end_ns))
            .order_by(c.bucket_ns.desc())
        )
        found: dict[str, None] = {}
        with self._database.connect() as conn:
            for text in conn.execute(stmt).scalars():
                found.update(dict.fromkeys(text.split()))
                if len(found) >= limit:
                    break
        return self._traces.get_summaries(list(found)[:limit])


def _hist_sums(table: sa.Table) -> list[Any]:
    return [sa.func.sum(table.c[name]) for name in HISTOGRAM_COLUMNS]


def _histogram(values: Iterable[Any], max_ns: Any) -> Histogram:
    return Histogram(tuple(int(v or 0) for v in values), int(max_ns or 0))
