"""The service graph's drawing: no label overlaps another label or a node, lines leave
their source's border and end at their target's, the same graph is drawn the same way,
and a 50-service topology stays legible (and is laid out quickly)."""

from __future__ import annotations

import dataclasses
import random
import re
import time

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from app.analysis.graph import build_service_graph, edge_label, feedback_edges, per_second
from app.analysis.layout import NODE_H, NODE_W, EdgeInput, lay_out
from tests.app.analysis.test_graph import MINUTE, edge, op
from tests.app.topology import fifty_services


def graph_of(calls, breakers=None):
    stats = [edge(p, c, mode=m, calls=10 + (7 * len(p) + len(c)) % 11, errors=len(c) % 3) for p, c, m in calls]
    services = sorted({n for p, c, m in calls for n in (p, c) if m != "database"})
    return build_service_graph(stats, [op(s) for s in services], MINUTE, breakers)


def overlaps(graph):
    boxes = graph.drawing.boxes()
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :] if ba.overlaps(bb)]


def inside(graph):
    for name, box in graph.drawing.boxes():
        assert 0 <= box.x and box.x + box.w <= graph.width, name
        assert 0 <= box.y and box.y + box.h <= graph.height, name


def on_border(point, node):
    x, y = point
    return (x in (node.x, node.x + NODE_W)) and node.y <= y <= node.y + NODE_H


DEMO = [
    ("gateway", "orders", "sync"),
    ("gateway", "users", "sync"),
    ("gateway", "registry", "lookup"),
    ("orders", "registry", "lookup"),
    ("orders", "payment", "sync"),
    ("orders", "inventory", "sync"),
    ("orders", "notifications", "async"),
    ("orders", "shipping", "async"),
    ("shipping", "notifications", "async"),
    ("orders", "sqlite:orders.db", "database"),
    ("payment", "sqlite:payment.db", "database"),
    ("inventory", "sqlite:inventory.db", "database"),
    ("users", "sqlite:users.db", "database"),
]


def test_no_label_overlaps_another_label_or_a_node_on_the_demo_graph():
    graph = graph_of(DEMO, {("orders", "payment"): "open", ("gateway", "orders"): "half_open"})
    assert overlaps(graph) == []
    inside(graph)
    assert graph.edge("gateway", "registry").is_lookup and not graph.edge("gateway", "orders").is_lookup


def test_every_line_starts_on_its_source_border_and_ends_on_its_target_border():
    graph = graph_of(DEMO + [("payment", "orders", "sync"), ("inventory", "inventory", "sync")])
    for e in graph.edges:
        source, target = graph.node(e.parent), graph.node(e.child)
        assert on_border(e.start, source), (e.parent, e.child, e.start)
        assert on_border(e.end, target), (e.parent, e.child, e.end)
        assert e.path.startswith(f"M{e.start[0]:.1f},{e.start[1]:.1f}")
        assert e.path.endswith(f"{e.end[0]:.1f},{e.end[1]:.1f}")
    back = graph.edge("payment", "orders")
    assert back.backward and back.start[0] == graph.node("payment").x, "a call back leaves its source's left side"
    starts = [e.start for e in graph.edges]
    assert len(set(starts)) == len(starts), "two lines leave from one point"


def test_a_label_sits_on_its_own_line():
    graph = graph_of(DEMO)
    for e in graph.edges:
        mid = e.box.y + 14
        assert f"{e.box.x:.1f},{mid:.1f}" in e.path and f"{e.box.x + e.box.w:.1f},{mid:.1f}" in e.path


def test_an_edge_skipping_columns_passes_no_node():
    graph = graph_of([("a", "b", "sync"), ("b", "c", "sync"), ("c", "d", "sync"), ("a", "d", "sync")])
    long = graph.edge("a", "d")
    xs = [float(x) for x in re.findall(r"([\d.]+),", long.path)]
    ys = [float(y) for y in re.findall(r",([\d.]+)", long.path)]
    for name in "bc":
        n = graph.node(name)
        for x, y in zip(xs, ys):
            assert not (n.x < x < n.x + NODE_W and n.y < y < n.y + NODE_H), (name, x, y)


def test_the_same_graph_is_drawn_the_same_whatever_the_order_of_its_edges():
    calls = fifty_services()
    first = graph_of(calls)
    shuffled = list(calls)
    random.Random(3).shuffle(shuffled)
    second = graph_of(shuffled)
    assert {n.name: (n.x, n.y) for n in first.nodes} == {n.name: (n.x, n.y) for n in second.nodes}
    assert {(e.parent, e.child): e.path for e in first.edges} == {(e.parent, e.child): e.path for e in second.edges}


def test_a_new_service_moves_no_node_of_the_columns_before_it():
    before = graph_of(DEMO)
    after = graph_of(DEMO + [("payment", "zz-fraud", "sync")])
    fraud = after.node("zz-fraud")
    for n in before.nodes:
        if n.layer < fraud.layer:
            assert (after.node(n.name).x, after.node(n.name).y) == (n.x, n.y), n.name


def test_fifty_services_stay_legible_and_are_laid_out_quickly():
    calls = fifty_services()
    started = time.perf_counter()
    graph = graph_of(calls, {(p, c): "open" for p, c, _ in calls[::9]})
    elapsed = time.perf_counter() - started
    assert len([n for n in graph.nodes if n.kind == "service"]) == 50
    assert overlaps(graph) == []
    inside(graph)
    assert graph.edge("svc-40", "svc-41").backward != graph.edge("svc-41", "svc-40").backward
    assert graph.edge("svc-12", "svc-12") is not None
    assert elapsed < 0.5, f"building and laying out 50 services took {elapsed:.3f} s"


def test_an_edge_label_reads_rate_errors_throttled_and_p99():
    graph = graph_of([("gateway", "orders", "sync")])
    e = graph.edge("gateway", "orders")
    assert e.label == ("0.17/s · 0% err", "p99 ")  # 10 calls in a minute
    e.red = dataclasses.replace(e.red, throttled_count=3)
    assert edge_label(e) == ("0.17/s · 0% err", "3 throttled · p99 ")
    assert [per_second(r) for r in (0, 0.004, 0.5, 2.25, 12.34, 250.4)] == ["0", "<0.01", "0.5", "2.25", "12.3", "250"]


def test_the_labels_of_a_fan_out_sit_level_with_their_targets():
    targets = [f"t{i}" for i in range(8)]
    graph = graph_of([("hub", t, "sync") for t in targets])
    for t in targets:
        label, node = graph.edge("hub", t).box, graph.node(t)
        assert abs((label.y + label.h / 2) - (node.y + NODE_H / 2)) < NODE_H, t


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11), st.integers(1, 40), st.booleans()), max_size=40)
)
def test_any_graph_is_drawn_without_overlaps_and_with_lines_on_their_ends(raw):
    pairs = {(f"n{a}", f"n{b}"): (chars, badge) for a, b, chars, badge in raw}
    back = feedback_edges(nx.DiGraph(list(pairs)))
    edges = [EdgeInput(p, c, (p, c) in back, chars, badge) for (p, c), (chars, badge) in sorted(pairs.items())]
    names = {n for pair in pairs for n in pair}
    drawing = lay_out(names, edges)
    boxes = drawing.boxes()
    for i, (a, box_a) in enumerate(boxes):
        assert 0 <= box_a.x and box_a.x + box_a.w <= drawing.width, a
        assert 0 <= box_a.y and box_a.y + box_a.h <= drawing.height, a
        for b, box_b in boxes[i + 1 :]:
            assert not box_a.overlaps(box_b), (a, b)
    for e, d in zip(edges, drawing.edges):
        for name, point in ((e.parent, d.points[0]), (e.child, d.points[-1])):
            x, y = drawing.nodes[name]
            assert point[0] in (x, x + NODE_W) and y <= point[1] <= y + NODE_H, (e, point)
