"""The service graph from edge aggregates, without HTML."""

from __future__ import annotations

import networkx as nx

from app.analysis.graph import (
    NODE_W,
    build_digraph,
    build_service_graph,
    feedback_edges,
    longest_sync_chain,
    readable_name,
)
from app.analysis.stats import percentile
from collectors.model import HISTOGRAM_BUCKETS, EdgeStats, Histogram, OperationTraffic, histogram_index

MINUTE = 60_000_000_000


def hist(*durations_ns: int) -> Histogram:
    counts = [0] * HISTOGRAM_BUCKETS
    for d in durations_ns:
        counts[histogram_index(d)] += 1
    return Histogram(tuple(counts), max(durations_ns, default=0))


def edge(parent: str, child: str, calls: int = 10, errors: int = 0, mode: str = "sync", ms: int = 5) -> EdgeStats:
    return EdgeStats(parent, child, mode, calls, errors, calls * ms * 1_000_000, hist(*[ms * 1_000_000] * calls))


def op(service: str, name: str = "GET /", count: int = 10, errors: int = 0, ms: int = 5) -> OperationTraffic:
    return OperationTraffic(service, name, count, errors, count * ms * 1_000_000, hist(*[ms * 1_000_000] * count))


def test_nodes_are_services_and_uninstrumented_peers_with_their_kind():
    g = build_digraph(
        [
            edge("gateway", "orders"),
            edge("orders", "sqlite:orders", mode="database"),
            edge("orders", "kafka:events", mode="queue"),
            edge("orders", "legacy-billing", mode="peer"),
        ],
        [op("gateway"), op("orders")],
    )
    kinds = dict(g.nodes(data="kind"))
    assert kinds == {
        "gateway": "service",
        "orders": "service",
        "sqlite:orders": "database",
        "kafka:events": "queue",
        "legacy-billing": "peer",
    }


def test_peer_service_edge_to_an_instrumented_service_is_not_counted_twice():
    g = build_digraph(
        [edge("gateway", "orders", calls=7), edge("gateway", "orders", calls=7, mode="peer")],
        [op("gateway"), op("orders")],
    )
    assert g.edges["gateway", "orders"]["count"] == 7
    assert g.edges["gateway", "orders"]["mode"] == "sync"


def test_red_per_node_and_edge_and_health_colour():
    graph = build_service_graph(
        [edge("gateway", "orders", calls=100, errors=10, ms=20), edge("orders", "payment", calls=100, errors=0)],
        [op("gateway", count=100, errors=10, ms=30), op("orders", count=100), op("payment", count=100)],
        window_ns=10 * MINUTE,
    )
    gw = graph.node("gateway")
    assert gw.red.count == 100 and abs(gw.red.rate_per_s - 100 / 600) < 1e-9
    assert gw.red.error_rate == 0.1 and gw.health == "bad"
    assert 20_000_000 <= gw.red.p50_ns <= 30_000_000
    bad = graph.edge("gateway", "orders")
    assert bad.health == "bad" and bad.red.error_rate == 0.1
    assert graph.edge("orders", "payment").health == "ok"


def test_peer_node_red_comes_from_incoming_calls():
    graph = build_service_graph(
        [edge("orders", "postgresql", calls=4, errors=1, mode="database")], [op("orders")], MINUTE
    )
    db = graph.node("postgresql")
    assert db.kind == "database" and db.red.count == 4 and db.red.error_rate == 0.25


def test_layout_puts_callers_left_of_callees():
    graph = build_service_graph(
        [edge("gateway", "orders"), edge("orders", "payment"), edge("orders", "inventory"), edge("gateway", "users")],
        [op(s) for s in ("gateway", "orders", "payment", "inventory", "users")],
        MINUTE,
    )
    x = {n.name: n.x for n in graph.nodes}
    assert x["gateway"] < x["orders"] < x["payment"]
    assert x["orders"] < x["inventory"]
    positions = {(n.x, n.y) for n in graph.nodes}
    assert len(positions) == len(graph.nodes), "two nodes drawn on top of each other"


def test_layout_of_thirty_services_keeps_nodes_apart_and_fits_its_box():
    names = [f"svc-{i:02d}" for i in range(30)]
    edges = [edge(names[i], names[j]) for i in range(30) for j in (2 * i + 1, 2 * i + 2) if j < 30]
    graph = build_service_graph(edges, [op(n) for n in names], MINUTE)
    assert len(graph.nodes) == 30
    for a in graph.nodes:
        assert 0 <= a.x and a.x + NODE_W <= graph.width and 0 <= a.y <= graph.height
        for b in graph.nodes:
            if a is not b and a.x == b.x:
                assert abs(a.y - b.y) >= 60
    for e in edges:
        assert graph.node(e.parent).x < graph.node(e.child).x


def test_async_edges_are_marked_and_not_part_of_the_synchronous_chain():
    graph = build_service_graph(
        [
            edge("gateway", "orders"),
            edge("orders", "payment"),
            edge("orders", "notifications", mode="async"),
            edge("notifications", "mailer"),
        ],
        [op(s) for s in ("gateway", "orders", "payment", "notifications", "mailer")],
        MINUTE,
    )
    assert graph.edge("orders", "notifications").is_async
    assert not graph.edge("gateway", "orders").is_async
    # Through the async edge the chain would be three hops long; it must not count.
    assert graph.longest_chain == ["gateway", "orders", "payment"]


def test_cycles_are_found_and_the_longest_chain_ignores_the_closing_edge():
    graph = build_service_graph(
        [edge("a", "b"), edge("b", "c"), edge("c", "a"), edge("c", "d"), edge("x", "y")],
        [op(s) for s in "abcdxy"],
        MINUTE,
    )
    assert graph.cycles == [["a", "b", "c"]]
    assert graph.edge("c", "a").in_cycle and not graph.edge("c", "d").in_cycle
    assert graph.longest_chain == ["a", "b", "c", "d"]
    assert graph.edge("b", "c").on_chain and not graph.edge("x", "y").on_chain


def test_feedback_edges_leave_an_acyclic_graph():
    g = nx.DiGraph([("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"), ("c", "c"), ("d", "a")])
    back = feedback_edges(g)
    rest = nx.DiGraph([e for e in g.edges if e not in back])
    assert nx.is_directed_acyclic_graph(rest)
    assert len(back) <= 3


def test_longest_chain_is_empty_without_synchronous_edges():
    g = build_digraph([edge("a", "b", mode="async")], [op("a"), op("b")])
    assert longest_sync_chain(g) == []


def test_breaker_badge_only_for_open_or_half_open():
    graph = build_service_graph(
        [edge("orders", "payment"), edge("orders", "inventory")],
        [op("orders")],
        MINUTE,
        {("orders", "payment"): "open", ("orders", "inventory"): "closed"},
    )
    assert graph.edge("orders", "payment").breaker == "open"
    assert graph.edge("orders", "inventory").breaker == ""


def test_percentiles_from_histogram_stay_within_a_bucket_of_the_truth():
    durations = [i * 100_000 for i in range(1, 1001)]  # 0.1ms .. 100ms
    h = hist(*durations)
    for q, truth in ((50, 50_000_000), (95, 95_000_000), (99, 99_000_000)):
        got = percentile(h, q)
        assert truth / 1.45 <= got <= truth * 1.45, (q, got)
    assert percentile(h, 100) <= 100_000_000
    assert percentile(hist(), 50) == 0


def test_lookups_are_their_own_kind_of_edge_and_not_on_the_call_chain():
    edges = [
        edge("gateway", "orders", calls=4),
        edge("orders", "registry", mode="lookup", calls=2),
        edge("orders", "registry", mode="peer-lookup", calls=2),
        edge("registry", "inventory", calls=1),
    ]
    ops = [op("gateway"), op("orders"), op("registry"), op("inventory")]
    g = build_service_graph(edges, ops, 60 * 10**9)
    lookup = g.edge("orders", "registry")
    assert lookup.mode == "lookup" and lookup.is_lookup and lookup.red.count == 2, "counted once"
    assert g.node("registry").kind == "service"
    assert g.longest_chain == ["gateway", "orders"]
    only_named = build_service_graph([edge("orders", "registry", mode="peer-lookup")], [op("orders")], 60 * 10**9)
    assert only_named.edge("orders", "registry").is_lookup and only_named.node("registry").kind == "peer"


def test_databases_and_queues_read_as_their_namespace_and_kind():
    edges = [
        edge("orders", "sqlite:/srv/spyglass/data/demo/orders.db", mode="database"),
        edge("orders", "spyglass-outbox:OrderPlaced", mode="queue"),
        edge("orders", "maps-api", mode="peer"),
    ]
    g = build_service_graph(edges, [op("orders")], 60 * 10**9)
    labels = {n.name: n.label for n in g.nodes}
    assert labels["sqlite:/srv/spyglass/data/demo/orders.db"] == "orders.db database"
    assert labels["spyglass-outbox:OrderPlaced"] == "OrderPlaced queue"
    assert labels["maps-api"] == "maps-api" and labels["orders"] == "orders"
    assert readable_name("redis", "database") == "redis"
