"""The view models the pages and ``/api/v1`` share: each reads the store once or twice and
hands the model objects to a pure function of ``app/analysis``.

Blueprints import their shared builders from here, never from each other, so a page's
module holds only its routes.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app
from werkzeug.exceptions import Conflict, NotFound

from app.analysis.breakers import BreakerView, edge_badges, summarize_breakers
from app.analysis.graph import ServiceGraph, build_service_graph, rate_limit_of
from app.analysis.overview import Moments, recent_compensations, service_health, troubled_breakers
from app.analysis.registry import DiscoveryActivity, Topology, compare_topology, discovery_activity
from app.analysis.sagas import check_saga, failed_action, failed_step, failure_cause, outcome_counts, saga_timeline
from app.analysis.stats import merge, red, sparkline
from app.experiment_runner import ExperimentRunningError
from app.params import parse_name
from app.post_guard import client_address
from app.registry_client import RegistryUnavailableError, fetch_instances
from app.scenarios import SCENARIOS, Scenario
from app.window import Window
from collectors.model import STATS_BUCKET_NS
from collectors.store import SpanStore

TRACE_LINKS = 8
"""Slowest and failing traces linked from a node's details."""
RECENT_TRACES = 25
"""Latest traces on the overview."""
MOMENTS = 6
"""Compensated sagas and fail-overs listed on the overview, each."""
FAILOVERS_SHOWN = 10
"""Latest discovery fail-overs on the registry page."""


def breaker_views(store: SpanStore, window: Window) -> list[BreakerView]:
    """Every breaker seen in the window, with its timeline."""
    calls = store.find_breaker_calls(window.start_ns, window.end_ns)
    transitions = store.find_breaker_transitions(window.start_ns, window.end_ns)
    names = {c.name for c in calls} | {t.name for t in transitions}
    before = store.find_last_transitions_before(names, window.start_ns)
    return summarize_breakers(calls, transitions, before, window.start_ns, window.end_ns)


def overview(store: SpanStore, window: Window) -> dict[str, Any]:
    """The landing page's figures: service health, pattern moments, latest traces."""
    ops = store.find_operation_traffic(window.start_ns, window.end_ns)
    sagas = [
        *store.find_sagas(outcome="compensated", limit=MOMENTS).sagas,
        *store.find_sagas(outcome="failed", limit=MOMENTS).sagas,
    ]
    steps = store.find_saga_steps([s.saga_id for s in sagas])
    moments = Moments(
        breakers=troubled_breakers(breaker_views(store, window)),
        compensations=recent_compensations(sagas, steps, window.start_ns, MOMENTS),
        failovers=store.find_failovers(window.start_ns, window.end_ns, MOMENTS),
    )
    return {
        "health": service_health(store.list_services(), ops, window.length_ns),
        "moments": moments,
        "traces": store.recent_traces(RECENT_TRACES),
        "span_count": store.count_spans(),
    }


def service_graph(store: SpanStore, window: Window) -> ServiceGraph:
    """The graph for a window, with breaker badges."""
    edges = store.find_edge_stats(window.start_ns, window.end_ns)
    ops = store.find_operation_traffic(window.start_ns, window.end_ns)
    badges = edge_badges(breaker_views(store, window))
    return build_service_graph(edges, ops, window.length_ns, badges)


def node_detail(store: SpanStore, name: str, window: Window) -> dict[str, Any]:
    """RED over time, operations and trace links of one node."""
    minutes = store.find_service_minutes(name, window.start_ns, window.end_ns)
    reds = [
        red(m.request_count, m.error_count, m.duration_sum_ns, m.histogram, STATS_BUCKET_NS, m.throttled_count)
        for m in minutes
    ]
    ops = store.find_operation_traffic(window.start_ns, window.end_ns, service=name)
    op_rows = [
        (o, red(o.request_count, o.error_count, o.duration_sum_ns, o.histogram, window.length_ns, o.throttled_count))
        for o in ops
    ]
    total = red(
        sum(o.request_count for o in ops),
        sum(o.error_count for o in ops),
        sum(o.duration_sum_ns for o in ops),
        merge([o.histogram for o in ops]),
        window.length_ns,
        sum(o.throttled_count for o in ops),
    )
    return {
        "name": name,
        "total": total,
        "series": [
            {
                "bucket_ns": m.bucket_ns,
                "requests": r.count,
                "errors": r.error_count,
                "throttled": r.throttled_count,
                "p50_ns": r.p50_ns,
                "p95_ns": r.p95_ns,
                "p99_ns": r.p99_ns,
            }
            for m, r in zip(minutes, reds)
        ],
        "charts": {
            "rate": sparkline([r.count / 60 for r in reds]),
            "errors": sparkline([r.error_rate for r in reds]),
            "p95": sparkline([r.p95_ns for r in reds]),
        },
        "operations": op_rows,
        "rate_limit": rate_limit_of(ops),
        "slowest": store.find_service_traces(name, window.start_ns, window.end_ns, failing=False, limit=TRACE_LINKS),
        "failing": store.find_service_traces(name, window.start_ns, window.end_ns, failing=True, limit=TRACE_LINKS),
    }


def registry_view(
    store: SpanStore, registry_url: str, window: Window
) -> tuple[Topology, DiscoveryActivity, str | None]:
    """The topology comparison, discovery's lookups and latest fail-overs, and the reason
    the registry could not be asked (or None)."""
    edges = store.find_edge_stats(window.start_ns, window.end_ns)
    activity = store.find_instance_activity(window.start_ns, window.end_ns)
    failovers = store.find_failovers(window.start_ns, window.end_ns, FAILOVERS_SHOWN)
    try:
        raw = fetch_instances(registry_url)
        problem = None
    except RegistryUnavailableError as err:
        raw, problem = [], str(err)
    return compare_topology(raw, edges, activity), discovery_activity(edges, failovers), problem


def saga_counts(store: SpanStore) -> list[tuple[str, int]]:
    """Every saga outcome (and running) with how many sagas have it."""
    return outcome_counts(store.count_sagas())


def saga_rows(store: SpanStore, outcome: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Sagas, most recent first, each with its failed step (if any) and, for one that did
    not complete, why: the reason its trace's summary keeps (its deepest error span)."""
    found = store.find_sagas(outcome=outcome, limit=limit)
    steps = store.find_saga_steps([s.saga_id for s in found.sagas])
    unfinished = {s.saga_id: s.trace_id for s in found.sagas if s.status in ("compensated", "failed")}
    summaries = {t.trace_id: t for t in store.get_summaries(sorted(set(unfinished.values())))}
    rows = []
    for s in found.sagas:
        failed = failed_action(steps.get(s.saga_id, []))
        reason = ""
        if s.saga_id in unfinished:
            summary = summaries.get(s.trace_id)
            reason = (summary.failure if summary else "") or "unknown"
        rows.append({"saga": s, "failed_step": failed.step if failed else None, "reason": reason})
    return rows, found.truncated


def saga_detail(store: SpanStore, saga_id: str) -> dict[str, Any]:
    """One saga, its steps, timeline and checks; 404 when unknown."""
    parse_name("saga id", saga_id)
    saga = store.get_saga(saga_id)
    if saga is None:
        abort(404, description=f"No saga {saga_id[:200]!r} in the store")
    steps = store.find_saga_steps([saga_id])[saga_id]
    failed = failed_step(steps)
    cause = failure_cause(steps, store.get_trace(failed.trace_id) if failed else [])
    known = store.find_saga_step_names(saga.name) if saga.name else []
    return {
        "saga": saga,
        "steps": steps,
        "timeline": saga_timeline(saga, steps, known),
        "check": check_saga(saga, steps),
        "cause": cause,
    }


def scenario_named(name: Any) -> Scenario:
    """The scenario ``name``; 404 naming the known ones otherwise."""
    scenario = SCENARIOS.get(name) if isinstance(name, str) else None
    if scenario is None:
        raise NotFound(f"unknown scenario {str(name)[:64]!r}; known: {', '.join(SCENARIOS)}")
    return scenario


def start_run(name: Any) -> Any:
    """Start scenario ``name``; 404 when unknown, 409 while another experiment runs."""
    scenario = scenario_named(name)
    try:
        return current_app.extensions["spyglass.chaos_runner"].start(scenario, client_address())
    except ExperimentRunningError as err:
        raise Conflict(f"{err}; wait for it to finish") from err
