"""The service graph page (/services): nodes, edges, RED, node and edge details."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, request

from app.analysis.breakers import edge_badges
from app.analysis.graph import NODE_H, NODE_W, ServiceGraph, build_service_graph
from app.analysis.stats import merge, red, sparkline
from app.breakers import breaker_views
from app.htmx import render_page_or_fragment
from app.params import parse_name
from app.window import WINDOW_CHOICES, Window, parse_window
from collectors.store import SpanStore, patterns

bp = Blueprint("services", __name__)

TRACE_LINKS = 8


def _store() -> SpanStore:
    return current_app.extensions["spyglass.store"]


def service_graph(store: SpanStore, window: Window) -> ServiceGraph:
    """The graph for a window, with breaker badges."""
    edges = patterns.find_edge_stats(store, window.start_ns, window.end_ns)
    ops = patterns.find_operation_stats(store, window.start_ns, window.end_ns)
    badges = edge_badges(breaker_views(store, window))
    return build_service_graph(edges, ops, window.length_ns, badges)


@bp.get("/services")
def index() -> str:
    """The graph page; htmx refreshes and scrubs only the graph fragment."""
    window = parse_window()
    graph = service_graph(_store(), window)
    return render_page_or_fragment(
        "services/index.html",
        "services/_graph.html",
        graph=graph,
        win=window,
        choices=WINDOW_CHOICES,
        node_w=NODE_W,
        node_h=NODE_H,
    )


def node_detail(store: SpanStore, name: str, window: Window) -> dict[str, Any]:
    """RED over time, operations and trace links of one node."""
    series = patterns.find_service_series(store, name, window.start_ns, window.end_ns)
    minute = patterns.BUCKET_NS
    reds = [red(p.request_count, p.error_count, p.duration_sum_ns, p.histogram, minute) for p in series]
    ops = patterns.find_operation_stats(store, window.start_ns, window.end_ns, service=name)
    op_rows = [(o, red(o.request_count, o.error_count, o.duration_sum_ns, o.histogram, window.length_ns)) for o in ops]
    total = red(
        sum(o.request_count for o in ops),
        sum(o.error_count for o in ops),
        sum(o.duration_sum_ns for o in ops),
        merge([o.histogram for o in ops]),
        window.length_ns,
    )
    return {
        "name": name,
        "total": total,
        "series": [
            {
                "bucket_ns": p.bucket_ns,
                "requests": r.count,
                "errors": r.error_count,
                "p50_ns": r.p50_ns,
                "p95_ns": r.p95_ns,
                "p99_ns": r.p99_ns,
            }
            for p, r in zip(series, reds)
        ],
        "charts": {
            "rate": sparkline([r.count / 60 for r in reds]),
            "errors": sparkline([r.error_rate for r in reds]),
            "p95": sparkline([r.p95_ns for r in reds]),
        },
        "operations": op_rows,
        "slowest": patterns.find_service_traces(
            store, name, window.start_ns, window.end_ns, failing=False, limit=TRACE_LINKS
        ),
        "failing": patterns.find_service_traces(
            store, name, window.start_ns, window.end_ns, failing=True, limit=TRACE_LINKS
        ),
    }


@bp.get("/services/node")
def node() -> str:
    """One node's details (a fragment for htmx, a page otherwise).

    The name goes in the query string (``?name=``), like the edge's ends: a service name is
    any text a sender chose, and only the query string carries every text unchanged.
    """
    window = parse_window()
    name = parse_name("name", request.args.get("name"))
    if not name:
        abort(400, description="name is required, e.g. ?name=payment")
    detail = node_detail(_store(), name, window)
    if not detail["operations"] and not detail["series"]:
        graph = service_graph(_store(), window)
        peer = graph.node(name)
        if peer is None:
            abort(404, description=f"No service or peer {name!r} in the window")
        detail["peer"] = peer
    return render_page_or_fragment("services/node.html", "services/_node.html", d=detail, win=window)


@bp.get("/services/edge")
def edge() -> str:
    """The traces that used one edge."""
    window = parse_window()
    parent = parse_name("parent", request.args.get("parent"))
    child = parse_name("child", request.args.get("child"))
    if not parent or not child:
        abort(400, description="parent and child are required, e.g. ?parent=orders&child=payment")
    store = _store()
    graph = service_graph(store, window)
    found = graph.edge(parent, child)
    if found is None:
        abort(404, description=f"No calls from {parent!r} to {child!r} in the window")
    traces = patterns.find_edge_traces(store, parent, child, window.start_ns, window.end_ns)
    return render_page_or_fragment("services/edge.html", "services/_edge.html", e=found, traces=traces, win=window)
