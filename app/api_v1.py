"""Spyglass's own JSON under /api/v1/: the service graph, breakers, sagas and registry,
built by the same functions as the pages."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app.params import parse_limit, parse_name, parse_outcome
from app.views import breaker_views, node_detail, registry_view, saga_detail, saga_rows, service_graph
from app.window import Window, parse_window
from collectors.store import SpanStore

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")


def _store() -> SpanStore:
    return current_app.extensions["spyglass.store"]


def _window_json(w: Window) -> dict[str, Any]:
    return {"start_ns": w.start_ns, "end_ns": w.end_ns, "window": w.window, "ago_min": w.ago}


def _red(r: Any) -> dict[str, Any]:
    return dataclasses.asdict(r)


@bp.get("/graph")
def graph() -> Any:
    """Nodes and edges with RED figures, cycles and the longest synchronous chain."""
    window = parse_window()
    g = service_graph(_store(), window)
    return jsonify(
        {
            "window": _window_json(window),
            "nodes": [
                {
                    "name": n.name,
                    "kind": n.kind,
                    "health": n.health,
                    "layer": n.layer,
                    "red": _red(n.red),
                    "rate_limit": dataclasses.asdict(n.rate_limit) if n.rate_limit else None,
                }
                for n in g.nodes
            ],
            "edges": [
                {
                    "parent": e.parent,
                    "child": e.child,
                    "mode": e.mode,
                    "health": e.health,
                    "red": _red(e.red),
                    "breaker": e.breaker or None,
                    "in_cycle": e.in_cycle,
                    "on_longest_chain": e.on_chain,
                }
                for e in g.edges
            ],
            "cycles": g.cycles,
            "longest_chain": g.longest_chain,
        }
    )


@bp.get("/services/<path:name>")
def service(name: str) -> Any:
    """One service's RED over time (per minute), its operations and trace ids."""
    parse_name("service", name)
    window = parse_window()
    d = node_detail(_store(), name, window)
    return jsonify(
        {
            "window": _window_json(window),
            "name": name,
            "red": _red(d["total"]),
            "rate_limit": dataclasses.asdict(d["rate_limit"]) if d["rate_limit"] else None,
            "series": d["series"],
            "operations": [{"name": o.name, "red": _red(r)} for o, r in d["operations"]],
            "slowest_traces": [t.trace_id for t in d["slowest"]],
            "failing_traces": [t.trace_id for t in d["failing"]],
        }
    )


@bp.get("/breakers")
def breakers() -> Any:
    """Every breaker in the window with state, counts, timeline segments and transitions."""
    window = parse_window()
    out = []
    for b in breaker_views(_store(), window):
        out.append(
            {
                "name": b.name,
                "caller": b.caller,
                "callee": b.callee,
                "state": b.state,
                "since_ns": b.since_ns,
                "time_in_state_ns": b.time_in_state_ns,
                "calls": b.call_count,
                "failures": b.failure_count,
                "rejected": b.rejected_count,
                "failure_threshold": b.failure_threshold,
                "reset_timeout_ms": b.reset_timeout_ms,
                "timeline": [{"state": s.state, "start_ns": s.start_ns, "end_ns": s.end_ns} for s in b.segments],
                "transitions": [dataclasses.asdict(m.transition) for m in b.marks],
            }
        )
    return jsonify({"window": _window_json(window), "breakers": out})


@bp.get("/sagas")
def sagas() -> Any:
    """Saga instances, most recent first; ``outcome`` filters, ``limit`` caps."""
    outcome = parse_outcome(request.args.get("outcome"))
    rows, truncated = saga_rows(_store(), outcome, parse_limit(request.args.get("limit"), default=50))
    return jsonify(
        {
            "sagas": [
                {**_saga_json(r["saga"]), "failed_step": r["failed_step"], "reason": r["reason"] or None} for r in rows
            ],
            "truncated": truncated,
        }
    )


@bp.get("/sagas/<path:saga_id>")
def saga(saga_id: str) -> Any:
    """One saga with its steps and the result of its checks."""
    d = saga_detail(_store(), saga_id)
    check, cause = d["check"], d["cause"]
    return jsonify(
        {
            **_saga_json(d["saga"]),
            "steps": [dataclasses.asdict(s) for s in d["steps"]],
            "failure": dataclasses.asdict(cause) if cause else None,
            "never_ran": [lane.step for lane in d["timeline"].never_ran],
            "check": {
                "ok": check.ok,
                "failed_step": check.failed_step.step if check.failed_step else None,
                "violations": [
                    {"rule": v.rule, "message": v.message, "span_ids": [s.span_id for s in v.steps]}
                    for v in check.violations
                ],
            },
        }
    )


@bp.get("/registry")
def registry() -> Any:
    """Registry instances with traffic, declared versus observed dependencies, lookups per
    caller and the latest discovery fail-overs."""
    window = parse_window()
    topo, discovery, problem = registry_view(_store(), current_app.config["SPYGLASS_SETTINGS"].registry_url, window)
    return jsonify(
        {
            "window": _window_json(window),
            "registry_error": problem,
            "instances": [dataclasses.asdict(i) for i in topo.instances],
            "declared": [list(p) for p in topo.declared],
            "observed": [list(p) for p in topo.observed],
            "undeclared": [list(p) for p in topo.undeclared],
            "unseen": [list(p) for p in topo.unseen],
            "lookups": [dataclasses.asdict(lk) for lk in discovery.lookups],
            "failovers": [dataclasses.asdict(f) for f in discovery.failovers],
        }
    )


def _saga_json(s: Any) -> dict[str, Any]:
    return {
        "saga_id": s.saga_id,
        "name": s.name,
        "outcome": s.status,
        "trace_id": s.trace_id,
        "start_ns": s.start_ns,
        "end_ns": s.end_ns,
        "duration_ns": s.duration_ns,
    }
