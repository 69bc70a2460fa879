"""The service graph page (/services): nodes, edges, RED, node and edge details."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, request

from app.analysis.graph import NODE_H, NODE_W
from app.analysis.headlines import gateway_headline, services_headline
from app.htmx import render_page_or_fragment
from app.params import parse_name
from app.topics import PAGE_TOPICS, TOPICS
from app.views import node_detail, service_graph
from app.window import WINDOW_CHOICES, parse_window
from collectors.store import SpanStore

bp = Blueprint("services", __name__)

GATEWAY = "gateway"
"""The demo's gateway: its panel explains the pattern even before a rate limit is recorded
(any service whose spans record a rate limit gets the explanation too)."""


def _store() -> SpanStore:
    return current_app.extensions["spyglass.store"]


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
        topic=TOPICS[PAGE_TOPICS["services"]],
        now=services_headline(graph),
    )


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
    extra = {}
    if detail.get("rate_limit") is not None or name == GATEWAY:
        extra = {
            "topic": TOPICS[PAGE_TOPICS["gateway"]],
            "now": gateway_headline(name, detail["total"], detail.get("rate_limit")),
        }
    return render_page_or_fragment("services/node.html", "services/_node.html", d=detail, win=window, **extra)


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
    traces = store.find_edge_traces(parent, child, window.start_ns, window.end_ns)
    return render_page_or_fragment("services/edge.html", "services/_edge.html", e=found, traces=traces, win=window)
