"""Writes and queries behind the pattern views: service graph, breakers, sagas, instances.

The write half is called from :meth:`SpanStore.write_spans` inside its transaction and
keeps small per-minute aggregates (edge and operation stats with latency histograms,
instance activity, breaker calls) and per-event rows (breaker transitions, saga steps),
so that no view ever scans the spans table. Only spans that carry the DESIGN.md pattern
attributes, entry spans (server, consumer, root) and cross-service pairs cost anything.

The read half is a set of functions taking the :class:`SpanStore`; each returns plain
dataclasses, never rows.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from collectors.model import KIND_CLIENT, KIND_CONSUMER, KIND_PRODUCER, KIND_SERVER, STATUS_ERROR, Span
from collectors.store.bulk import adding, upsert
from collectors.store.schema import (
    HISTOGRAM_BOUNDS_NS,
    HISTOGRAM_BUCKETS,
    HISTOGRAM_COLUMNS,
    breaker_calls,
    breaker_transitions,
    edge_stats,
    instance_stats,
    operation_stats,
    saga_steps,
    sagas,
    spans,
    trace_services,
    trace_summaries,
)

if TYPE_CHECKING:
    from collectors.store.core import SpanStore

BUCKET_NS = 60 * 1_000_000_000
"""Stats are kept per minute."""

# Span attribute keys (DESIGN.md "Span conventions for patterns" and OpenTelemetry).
CB_NAME = "circuit_breaker.name"
CB_STATE = "circuit_breaker.state"
CB_REJECTED = "circuit_breaker.rejected"
CB_EVENT = "circuit_breaker.state_change"
CB_FROM = "circuit_breaker.state.from"
CB_TO = "circuit_breaker.state.to"
CB_FAILURES = "circuit_breaker.failure_count"
SAGA_NAME = "saga.name"
SAGA_ID = "saga.id"
SAGA_OUTCOME = "saga.outcome"
SAGA_STEP = "saga.step"
SAGA_STEP_INDEX = "saga.step.index"
SAGA_PHASE = "saga.phase"
PEER_SERVICE = "peer.service"
DB_SYSTEM = "db.system"
DB_NAMESPACE = "db.namespace"
DB_NAME = "db.name"
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION = "messaging.destination.name"
SERVICE_INSTANCE_ID = "service.instance.id"

MODE_SYNC = 0
MODE_ASYNC = 1
MODE_PEER_DB = 2
MODE_PEER_QUEUE = 3
MODE_PEER_SERVICE = 4
MODE_NAMES = {
    MODE_SYNC: "sync",
    MODE_ASYNC: "async",
    MODE_PEER_DB: "database",
    MODE_PEER_QUEUE: "queue",
    MODE_PEER_SERVICE: "peer",
}

SAGA_OUTCOMES = ("completed", "compensated", "failed")
RUNNING = "running"


# -- model -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Histogram:
    """Latency counts per bucket; ``bounds_ns[i]`` is the exclusive upper edge of bucket i."""

    counts: tuple[int, ...]
    max_ns: int = 0
    bounds_ns: tuple[int, ...] = HISTOGRAM_BOUNDS_NS


@dataclass(frozen=True, slots=True)
class EdgeStats:
    """Calls from ``parent`` to ``child`` in a window; ``mode`` is one of MODE_NAMES' values."""

    parent: str
    child: str
    mode: str
    call_count: int
    error_count: int
    duration_sum_ns: int
    histogram: Histogram


@dataclass(frozen=True, slots=True)
class OperationStats:
    """Requests served by one operation (entry spans) of one service in a window or minute."""

    service: str
    name: str
    request_count: int
    error_count: int
    duration_sum_ns: int
    histogram: Histogram
    bucket_ns: int = 0


@dataclass(frozen=True, slots=True)
class InstanceActivity:
    """Requests an instance (``service.instance.id``) served in a window, and when last."""

    service: str
    instance_id: str
    request_count: int
    error_count: int
    last_seen_ns: int


@dataclass(frozen=True, slots=True)
class BreakerCalls:
    """Calls made through one breaker by one caller in a window, and its latest state."""

    name: str
    caller: str
    callee: str
    call_count: int
    failure_count: int
    rejected_count: int
    last_ns: int
    last_state: str


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """One ``circuit_breaker.state_change`` event and the span that carried it."""

    name: str
    caller: str
    time_ns: int
    from_state: str
    to_state: str
    failure_count: int | None
    trace_id: str
    span_id: str


@dataclass(frozen=True, slots=True)
class SagaStep:
    """One step span of a saga: an action or a compensation."""

    saga_id: str
    step: str
    step_index: int | None
    phase: str
    service: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    trace_id: str
    span_id: str

    @property
    def is_error(self) -> bool:
        """Whether the step's span ended with status ERROR."""
        return self.status_code == STATUS_ERROR


@dataclass(frozen=True, slots=True)
class SagaInstance:
    """One saga run; ``outcome`` is None while its root span has not arrived (running)."""

    saga_id: str
    name: str
    trace_id: str
    root_span_id: str
    service: str
    start_ns: int
    end_ns: int
    outcome: str | None

    @property
    def duration_ns(self) -> int:
        """First step start (or root start) to last end."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def status(self) -> str:
        """The outcome, or ``running`` while the saga has none."""
        return self.outcome or RUNNING


@dataclass(frozen=True, slots=True)
class SagaList:
    """Sagas, most recent first; ``truncated`` says more matched."""

    sagas: list[SagaInstance]
    truncated: bool


# -- writes (inside SpanStore.write_spans' transaction) ------------------------------------------


def histogram_index(duration_ns: int) -> int:
    """The histogram bucket a duration falls in."""
    return bisect.bisect_right(HISTOGRAM_BOUNDS_NS, duration_ns)


class EdgeAccumulator:
    """Collects edge-stats rows for one batch; flushed with :func:`write_edge_stats`."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int, int], list[int]] = {}

    def add(self, parent: str, child: str, mode: int, start_ns: int, duration_ns: int, failed: bool) -> None:
        """Count one call."""
        key = (parent, child, mode, start_ns - start_ns % BUCKET_NS)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0] * (4 + HISTOGRAM_BUCKETS)
        row[0] += 1
        row[1] += bool(failed)
        row[2] += duration_ns
        row[3] = max(row[3], duration_ns)
        row[4 + histogram_index(duration_ns)] += 1

    def add_peers(self, new: Iterable[Span]) -> None:
        """Count calls from client and producer spans to peers named by their attributes."""
        for s in new:
            if s.kind not in (KIND_CLIENT, KIND_PRODUCER):
                continue
            peer = peer_of(s.attributes, s.kind)
            if peer is not None:
                self.add(s.service, peer[0], peer[1], s.start_ns, s.duration_ns, s.is_error)


def edge_mode(parent_kind: int, child_kind: int) -> int:
    """Asynchronous when the call goes through a producer and a consumer span."""
    return MODE_ASYNC if parent_kind == KIND_PRODUCER or child_kind == KIND_CONSUMER else MODE_SYNC


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
        return peer, MODE_PEER_SERVICE
    return None


_EDGE_STATS_COLUMNS = (
    "parent",
    "child",
    "mode",
    "bucket_ns",
    "call_count",
    "error_count",
    "duration_sum_ns",
    "duration_max_ns",
    *HISTOGRAM_COLUMNS,
)
_EDGE_STATS_SETS = adding(["call_count", "error_count", "duration_sum_ns", *HISTOGRAM_COLUMNS], ["duration_max_ns"])
_OPERATION_STATS_COLUMNS = (
    "service",
    "name",
    "bucket_ns",
    "request_count",
    "error_count",
    "duration_sum_ns",
    "duration_max_ns",
    *HISTOGRAM_COLUMNS,
)
_OPERATION_STATS_SETS = adding(
    ["request_count", "error_count", "duration_sum_ns", *HISTOGRAM_COLUMNS], ["duration_max_ns"]
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
        [(*k, *v) for k, v in acc.rows.items()],
    )


@dataclass(slots=True)
class PatternRows:
    """The pattern-view rows of a batch, computed before the write lock is taken."""

    operations: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    instances: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    calls: dict[tuple[str, str, int], list[Any]] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    sagas: dict[str, dict[str, Any]] = field(default_factory=dict)


def pattern_rows(new: Iterable[Span]) -> PatternRows:
    """Operation and instance stats, breaker rows and saga rows of new spans (no database)."""
    out = PatternRows()
    ops, inst, calls = out.operations, out.instances, out.calls
    for s in new:
        attrs = s.attributes
        bucket = s.start_ns - s.start_ns % BUCKET_NS
        if s.kind in (KIND_SERVER, KIND_CONSUMER) or not s.parent_span_id:
            row = ops.get((s.service, s.name, bucket))
            if row is None:
                row = ops[(s.service, s.name, bucket)] = [0] * (4 + HISTOGRAM_BUCKETS)
            d = s.duration_ns
            row[0] += 1
            row[1] += s.is_error
            row[2] += d
            row[3] = max(row[3], d)
            row[4 + histogram_index(d)] += 1
            instance = s.resource.attributes.get(SERVICE_INSTANCE_ID)
            if instance is not None:
                irow = inst.setdefault((s.service, str(instance), bucket), [0, 0, 0])
                irow[0] += 1
                irow[1] += s.is_error
                irow[2] = max(irow[2], s.end_ns)
        if CB_NAME in attrs:
            _collect_breaker_call(s, bucket, calls)
        if s.events:
            _collect_transitions(s, out.transitions)
        if SAGA_ID in attrs:
            _collect_saga(s, out.steps, out.sagas)
    return out


def write_pattern_rows(conn: Connection, rows: PatternRows) -> None:
    """Add a batch's :class:`PatternRows` to the pattern tables."""
    upsert(
        conn,
        operation_stats,
        _OPERATION_STATS_COLUMNS,
        ("service", "name", "bucket_ns"),
        _OPERATION_STATS_SETS,
        [(*k, *v) for k, v in rows.operations.items()],
    )
    upsert(
        conn,
        instance_stats,
        _INSTANCE_STATS_COLUMNS,
        ("service", "instance_id", "bucket_ns"),
        _INSTANCE_STATS_SETS,
        [(*k, *v) for k, v in rows.instances.items()],
    )
    if rows.calls:
        _write_breaker_calls(conn, rows.calls)
    if rows.transitions:
        conn.execute(_insert(conn, breaker_transitions).on_conflict_do_nothing(), rows.transitions)
    if rows.steps:
        conn.execute(_insert(conn, saga_steps).on_conflict_do_nothing(), rows.steps)
    if rows.sagas:
        _write_sagas(conn, list(rows.sagas.values()))


def drop_stale_rows(conn: Connection, oldest_ns: int | None) -> None:
    """Delete pattern rows older than the oldest stored trace (all of them when None)."""
    tables_by_time = [
        (edge_stats, edge_stats.c.bucket_ns),
        (operation_stats, operation_stats.c.bucket_ns),
        (instance_stats, instance_stats.c.bucket_ns),
        (breaker_calls, breaker_calls.c.bucket_ns),
        (breaker_transitions, breaker_transitions.c.time_ns),
        (sagas, sagas.c.end_ns),
        (saga_steps, saga_steps.c.end_ns),
    ]
    for table, column in tables_by_time:
        if oldest_ns is None:
            conn.execute(sa.delete(table))
        else:
            conn.execute(sa.delete(table).where(column < oldest_ns - oldest_ns % BUCKET_NS))


def _collect_breaker_call(s: Span, bucket: int, calls: dict[tuple[str, str, int], list[Any]]) -> None:
    attrs = s.attributes
    name = str(attrs[CB_NAME])
    state = str(attrs.get(CB_STATE, "") or "")
    rejected = attrs.get(CB_REJECTED) in (True, "true")
    callee = attrs.get(PEER_SERVICE)
    if not isinstance(callee, str) or not callee:
        callee = name.split("->", 1)[1].strip() if "->" in name else ""
    row = calls.get((name, s.service, bucket))
    if row is None:
        row = calls[(name, s.service, bucket)] = [callee, 0, 0, 0, 0, ""]
    row[1] += 1
    row[2] += s.is_error and not rejected
    row[3] += rejected
    if s.start_ns >= row[4] and state:
        row[4], row[5] = s.start_ns, state


def _collect_transitions(s: Span, out: list[dict[str, Any]]) -> None:
    for seq, event in enumerate(s.events):
        if event.name != CB_EVENT:
            continue
        a = event.attributes
        failures = a.get(CB_FAILURES)
        out.append(
            {
                "trace_id": bytes.fromhex(s.trace_id),
                "span_id": bytes.fromhex(s.span_id),
                "seq": seq,
                "name": str(a.get(CB_NAME) or s.attributes.get(CB_NAME) or ""),
                "caller": s.service,
                "time_ns": event.time_ns,
                "from_state": str(a.get(CB_FROM, "")),
                "to_state": str(a.get(CB_TO, "")),
                "failure_count": int(failures)
                if isinstance(failures, (int, float)) and not isinstance(failures, bool)
                else None,
            }
        )


def _collect_saga(s: Span, steps: list[dict[str, Any]], saga_rows: dict[str, dict[str, Any]]) -> None:
    attrs = s.attributes
    saga_id = str(attrs[SAGA_ID])
    name = str(attrs.get(SAGA_NAME, "") or "")
    step = attrs.get(SAGA_STEP)
    is_root = step is None
    if not is_root:
        index = attrs.get(SAGA_STEP_INDEX)
        steps.append(
            {
                "trace_id": bytes.fromhex(s.trace_id),
                "span_id": bytes.fromhex(s.span_id),
                "saga_id": saga_id,
                "step": str(step),
                "step_index": int(index) if isinstance(index, (int, float)) and not isinstance(index, bool) else None,
                "phase": str(attrs.get(SAGA_PHASE, "action")),
                "service": s.service,
                "start_ns": s.start_ns,
                "end_ns": s.end_ns,
                "status_code": s.status_code,
                "status_message": s.status_message or None,
            }
        )
    outcome = attrs.get(SAGA_OUTCOME) if is_root else None
    row = saga_rows.get(saga_id)
    new = {
        "saga_id": saga_id,
        "name": name,
        "trace_id": bytes.fromhex(s.trace_id),
        "root_span_id": bytes.fromhex(s.span_id) if is_root else None,
        "service": s.service,
        "start_ns": s.start_ns,
        "end_ns": s.end_ns,
        "outcome": str(outcome) if outcome is not None else None,
    }
    if row is None:
        saga_rows[saga_id] = new
        return
    row["start_ns"] = min(row["start_ns"], new["start_ns"])
    row["end_ns"] = max(row["end_ns"], new["end_ns"])
    if is_root:
        for key in ("name", "trace_id", "root_span_id", "service", "outcome"):
            row[key] = new[key]
    elif not row["name"]:
        row["name"] = name


def _write_breaker_calls(conn: Connection, calls: dict[tuple[str, str, int], list[Any]]) -> None:
    values = [
        {
            "name": n,
            "caller": c,
            "bucket_ns": b,
            "callee": v[0],
            "call_count": v[1],
            "failure_count": v[2],
            "rejected_count": v[3],
            "last_ns": v[4],
            "last_state": v[5],
        }
        for (n, c, b), v in calls.items()
    ]
    stmt = _insert(conn, breaker_calls)
    old, exc = breaker_calls.c, stmt.excluded
    newer = exc.last_ns >= old.last_ns
    stmt = stmt.on_conflict_do_update(
        index_elements=["name", "caller", "bucket_ns"],
        set_={
            "callee": sa.case((old.callee == "", exc.callee), else_=old.callee),
            "call_count": old.call_count + exc.call_count,
            "failure_count": old.failure_count + exc.failure_count,
            "rejected_count": old.rejected_count + exc.rejected_count,
            "last_state": sa.case((sa.and_(newer, exc.last_state != ""), exc.last_state), else_=old.last_state),
            "last_ns": sa.case((sa.and_(newer, exc.last_state != ""), exc.last_ns), else_=old.last_ns),
        },
    )
    conn.execute(stmt, values)


def _write_sagas(conn: Connection, values: list[dict[str, Any]]) -> None:
    stmt = _insert(conn, sagas)
    old, exc = sagas.c, stmt.excluded
    from_root = exc.root_span_id.is_not(None)
    least, greatest = _least_greatest(conn)
    stmt = stmt.on_conflict_do_update(
        index_elements=["saga_id"],
        set_={
            "name": sa.case((sa.or_(from_root, old.name == ""), exc.name), else_=old.name),
            "trace_id": sa.case((from_root, exc.trace_id), else_=old.trace_id),
            "root_span_id": sa.case((from_root, exc.root_span_id), else_=old.root_span_id),
            "service": sa.case((from_root, exc.service), else_=old.service),
            "outcome": sa.case((from_root, exc.outcome), else_=old.outcome),
            "start_ns": least(old.start_ns, exc.start_ns),
            "end_ns": greatest(old.end_ns, exc.end_ns),
        },
    )
    conn.execute(stmt, values)


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _least_greatest(conn: Connection) -> tuple[Any, Any]:
    if conn.dialect.name == "postgresql":
        return sa.func.least, sa.func.greatest
    return sa.func.min, sa.func.max


# -- reads ---------------------------------------------------------------------------------------


def _window(start_ns: int, end_ns: int, column: Any) -> list[Any]:
    return [column >= start_ns - start_ns % BUCKET_NS, column <= end_ns]


def _hist_sums(table: sa.Table) -> list[Any]:
    return [sa.func.sum(table.c[name]) for name in HISTOGRAM_COLUMNS]


def _histogram(values: Iterable[Any], max_ns: Any) -> Histogram:
    return Histogram(tuple(int(v or 0) for v in values), int(max_ns or 0))


def find_edge_stats(store: SpanStore, start_ns: int, end_ns: int) -> list[EdgeStats]:
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
            *_hist_sums(edge_stats),
        )
        .where(*_window(start_ns, end_ns, c.bucket_ns))
        .group_by(c.parent, c.child, c.mode)
        .order_by(c.parent, c.child, c.mode)
    )
    with store.engine.connect() as conn:
        return [
            EdgeStats(
                r[0], r[1], MODE_NAMES.get(r[2], "sync"), int(r[3]), int(r[4]), int(r[5]), _histogram(r[7:], r[6])
            )
            for r in conn.execute(stmt)
        ]


def find_operation_stats(
    store: SpanStore, start_ns: int, end_ns: int, service: str | None = None
) -> list[OperationStats]:
    """Entry-span stats per (service, operation) over the window, sorted by service and name."""
    c = operation_stats.c
    stmt = sa.select(
        c.service,
        c.name,
        sa.func.sum(c.request_count),
        sa.func.sum(c.error_count),
        sa.func.sum(c.duration_sum_ns),
        sa.func.max(c.duration_max_ns),
        *_hist_sums(operation_stats),
    )
    stmt = stmt.where(*_window(start_ns, end_ns, c.bucket_ns))
    if service is not None:
        stmt = stmt.where(c.service == service)
    stmt = stmt.group_by(c.service, c.name).order_by(c.service, c.name)
    with store.engine.connect() as conn:
        return [
            OperationStats(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), _histogram(r[6:], r[5]))
            for r in conn.execute(stmt)
        ]


def find_service_series(store: SpanStore, service: str, start_ns: int, end_ns: int) -> list[OperationStats]:
    """One entry per minute with requests for the service (all operations summed), oldest first."""
    c = operation_stats.c
    stmt = (
        sa.select(
            c.bucket_ns,
            sa.func.sum(c.request_count),
            sa.func.sum(c.error_count),
            sa.func.sum(c.duration_sum_ns),
            sa.func.max(c.duration_max_ns),
            *_hist_sums(operation_stats),
        )
        .where(c.service == service, *_window(start_ns, end_ns, c.bucket_ns))
        .group_by(c.bucket_ns)
        .order_by(c.bucket_ns)
    )
    with store.engine.connect() as conn:
        return [
            OperationStats(service, "", int(r[1]), int(r[2]), int(r[3]), _histogram(r[5:], r[4]), bucket_ns=r[0])
            for r in conn.execute(stmt)
        ]


def find_edge_series(store: SpanStore, parent: str, child: str, start_ns: int, end_ns: int) -> list[OperationStats]:
    """Per-minute calls on one edge (all modes summed), oldest first, as OperationStats."""
    c = edge_stats.c
    stmt = (
        sa.select(
            c.bucket_ns,
            sa.func.sum(c.call_count),
            sa.func.sum(c.error_count),
            sa.func.sum(c.duration_sum_ns),
            sa.func.max(c.duration_max_ns),
            *_hist_sums(edge_stats),
        )
        .where(c.parent == parent, c.child == child, *_window(start_ns, end_ns, c.bucket_ns))
        .group_by(c.bucket_ns)
        .order_by(c.bucket_ns)
    )
    with store.engine.connect() as conn:
        return [
            OperationStats(child, "", int(r[1]), int(r[2]), int(r[3]), _histogram(r[5:], r[4]), bucket_ns=r[0])
            for r in conn.execute(stmt)
        ]


def find_instance_activity(store: SpanStore, start_ns: int, end_ns: int) -> list[InstanceActivity]:
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
        .where(*_window(start_ns, end_ns, c.bucket_ns))
        .group_by(c.service, c.instance_id)
        .order_by(c.service, c.instance_id)
    )
    with store.engine.connect() as conn:
        return [InstanceActivity(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in conn.execute(stmt)]


def find_service_traces(
    store: SpanStore, service: str, start_ns: int, end_ns: int, *, failing: bool, limit: int = 10
) -> list[Any]:
    """Traces the service took part in within the window: the slowest, or the failing ones
    (those with an error span) most recent first. At most ``limit`` TraceSummary objects."""
    from collectors.store.core import TraceQuery

    if failing:
        return store.find_traces(
            TraceQuery(start_ns=start_ns, end_ns=end_ns, service=service, status="error", limit=limit)
        ).traces
    ts, sm = trace_services.c, trace_summaries.c
    stmt = (
        sa.select(sm.trace_id)
        .select_from(trace_services.join(trace_summaries, ts.trace_id == sm.trace_id))
        .where(ts.service == service, ts.start_ns >= start_ns, ts.start_ns <= end_ns)
        .order_by((sm.end_ns - sm.start_ns).desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        ids = [r.hex() for r in conn.execute(stmt).scalars()]
    return store.get_summaries(ids)


def find_edge_traces(
    store: SpanStore, parent: str, child: str, start_ns: int, end_ns: int, limit: int = 20, scan: int = 400
) -> list[Any]:
    """Traces, most recent first, in which a span of ``parent`` called ``child`` (a span of
    ``child`` with a parent span in ``parent``, or a client/producer span of ``parent``
    naming ``child`` as its peer). Looks at most at ``scan`` candidate traces."""
    a, b = trace_services.alias("a"), trace_services.alias("b")
    cand = (
        sa.select(a.c.trace_id)
        .where(a.c.service == parent, a.c.start_ns >= start_ns, a.c.start_ns <= end_ns)
        .order_by(a.c.start_ns.desc())
        .limit(scan)
    )
    with store.engine.connect() as conn:
        candidates = list(dict.fromkeys(conn.execute(cand).scalars()))
        if not candidates:
            return []
        if parent != child:
            both = set(
                conn.execute(
                    sa.select(b.c.trace_id).where(b.c.service == child, b.c.trace_id.in_(candidates))
                ).scalars()
            )
        else:
            both = set(candidates)
        rows = conn.execute(
            sa.select(
                spans.c.trace_id,
                spans.c.span_id,
                spans.c.parent_span_id,
                spans.c.service,
                spans.c.kind,
                spans.c.attributes,
            ).where(spans.c.trace_id.in_(candidates))
        ).all()
        attributes = dict(zip(rows, store.attributes_of(conn, [r.attributes for r in rows]), strict=True))
    by_trace: dict[bytes, list[Any]] = defaultdict(list)
    for r in rows:
        by_trace[r.trace_id].append(r)
    found = []
    for key in candidates:
        group = by_trace.get(key, [])
        service_of = {r.span_id: r.service for r in group}
        hit = key in both and any(
            r.service == child and r.parent_span_id is not None and service_of.get(r.parent_span_id) == parent
            for r in group
        )
        if not hit:
            for r in group:
                if r.service == parent and r.kind in (KIND_CLIENT, KIND_PRODUCER) and r.attributes:
                    peer = peer_of(attributes[r], r.kind)
                    if peer is not None and peer[0] == child:
                        hit = True
                        break
        if hit:
            found.append(key.hex())
            if len(found) == limit:
                break
    return store.get_summaries(found)


def find_breaker_calls(store: SpanStore, start_ns: int, end_ns: int) -> list[BreakerCalls]:
    """Per (breaker, caller): calls, failures and rejections in the window and the state of
    the latest call, sorted by name and caller."""
    c = breaker_calls.c
    stmt = (
        sa.select(
            c.name,
            c.caller,
            sa.func.max(c.callee),
            sa.func.sum(c.call_count),
            sa.func.sum(c.failure_count),
            sa.func.sum(c.rejected_count),
            sa.func.max(c.last_ns),
        )
        .where(*_window(start_ns, end_ns, c.bucket_ns))
        .group_by(c.name, c.caller)
        .order_by(c.name, c.caller)
    )
    with store.engine.connect() as conn:
        totals = conn.execute(stmt).all()
        if not totals:
            return []
        latest = {}
        last = conn.execute(
            sa.select(c.name, c.caller, c.last_ns, c.last_state).where(
                *_window(start_ns, end_ns, c.bucket_ns), c.last_state != ""
            )
        ).all()
    for r in last:
        key = (r.name, r.caller)
        if key not in latest or r.last_ns >= latest[key][0]:
            latest[key] = (r.last_ns, r.last_state)
    out = []
    for r in totals:
        last_ns, last_state = latest.get((r[0], r[1]), (int(r[6]), ""))
        out.append(BreakerCalls(r[0], r[1], r[2] or "", int(r[3]), int(r[4]), int(r[5]), last_ns, last_state))
    return out


def find_breaker_transitions(
    store: SpanStore, start_ns: int, end_ns: int, name: str | None = None, limit: int = 5000
) -> list[BreakerTransition]:
    """State changes in [start_ns, end_ns], oldest first, at most ``limit``."""
    c = breaker_transitions.c
    stmt = sa.select(breaker_transitions).where(c.time_ns >= start_ns, c.time_ns <= end_ns)
    if name is not None:
        stmt = stmt.where(c.name == name)
    stmt = stmt.order_by(c.time_ns, c.seq).limit(limit)
    with store.engine.connect() as conn:
        return [_transition(r) for r in conn.execute(stmt)]


def find_last_transitions_before(
    store: SpanStore, names: Iterable[str], before_ns: int
) -> dict[str, BreakerTransition]:
    """For each breaker name, its latest state change before ``before_ns`` (absent: none)."""
    c = breaker_transitions.c
    out: dict[str, BreakerTransition] = {}
    with store.engine.connect() as conn:
        for name in sorted(set(names)):
            row = conn.execute(
                sa.select(breaker_transitions)
                .where(c.name == name, c.time_ns < before_ns)
                .order_by(c.time_ns.desc(), c.seq.desc())
                .limit(1)
            ).first()
            if row is not None:
                out[name] = _transition(row)
    return out


def _transition(r: Any) -> BreakerTransition:
    return BreakerTransition(
        r.name, r.caller, r.time_ns, r.from_state, r.to_state, r.failure_count, r.trace_id.hex(), r.span_id.hex()
    )


def find_sagas(
    store: SpanStore,
    *,
    outcome: str | None = None,
    name: str | None = None,
    limit: int = 50,
    before_ns: int | None = None,
) -> SagaList:
    """Saga instances, most recent start first; ``outcome`` may be ``running``."""
    c = sagas.c
    stmt = sa.select(sagas)
    if outcome == RUNNING:
        stmt = stmt.where(c.outcome.is_(None))
    elif outcome:
        stmt = stmt.where(c.outcome == outcome)
    if name:
        stmt = stmt.where(c.name == name)
    if before_ns is not None:
        stmt = stmt.where(c.start_ns <= before_ns)
    stmt = stmt.order_by(c.start_ns.desc(), c.saga_id.desc()).limit(limit + 1)
    with store.engine.connect() as conn:
        rows = [_saga(r) for r in conn.execute(stmt)]
    return SagaList(rows[:limit], len(rows) > limit)


def get_saga(store: SpanStore, saga_id: str) -> SagaInstance | None:
    """One saga instance, or None when unknown."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(sagas).where(sagas.c.saga_id == saga_id)).first()
    return _saga(row) if row is not None else None


def find_saga_steps(store: SpanStore, saga_ids: Iterable[str]) -> dict[str, list[SagaStep]]:
    """Step spans of the given sagas, each list ordered by start time."""
    ids = list(saga_ids)
    out: dict[str, list[SagaStep]] = {i: [] for i in ids}
    if not ids:
        return out
    c = saga_steps.c
    with store.engine.connect() as conn:
        for r in conn.execute(sa.select(saga_steps).where(c.saga_id.in_(ids)).order_by(c.start_ns, c.span_id)):
            out[r.saga_id].append(
                SagaStep(
                    r.saga_id,
                    r.step,
                    r.step_index,
                    r.phase,
                    r.service,
                    r.start_ns,
                    r.end_ns,
                    r.status_code,
                    r.status_message or "",
                    r.trace_id.hex(),
                    r.span_id.hex(),
                )
            )
    return out


def _saga(r: Any) -> SagaInstance:
    return SagaInstance(
        r.saga_id,
        r.name,
        r.trace_id.hex(),
        r.root_span_id.hex() if r.root_span_id else "",
        r.service,
        r.start_ns,
        r.end_ns,
        r.outcome,
    )
