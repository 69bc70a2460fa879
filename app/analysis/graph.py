"""The service graph: a networkx DiGraph from edge aggregates, its RED figures, cycles, the
longest synchronous call chain, and its drawing (app.analysis.layout)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx

from app.analysis.layout import DURATION_CHARS, NODE_H, NODE_W, Box, Drawing, EdgeInput, lay_out
from app.analysis.stats import Red, health, merge, red
from collectors.model import EdgeStats, Histogram, OperationTraffic

LABEL_CHARS = 21
MAX_CYCLES = 20

_MODE_PRIORITY = {"sync": 0, "async": 1, "lookup": 2, "peer": 3, "peer-lookup": 4, "database": 5, "queue": 6}
_PAIRED = ("sync", "async", "lookup")
_PEER_KINDS = {"database": "database", "queue": "queue", "peer": "peer", "peer-lookup": "peer"}
_KIND_WORDS = {"database": "database", "queue": "queue"}


@dataclass(slots=True)
class GraphNode:
    """A service or an uninstrumented peer, with its RED figures and position."""

    name: str
    kind: str
    red: Red
    health: str
    label: str
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    on_chain: bool = False
    in_cycle: bool = False
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The limit a service's spans record: ``limit`` requests per ``window_ms``."""

    limit: int
    window_ms: int | None

    @property
    def text(self) -> str:
        """``20 per 1 s``, ``100 per 250 ms`` or ``20`` (no window recorded)."""
        if self.window_ms is None:
            return str(self.limit)
        window = f"{self.window_ms // 1000} s" if self.window_ms % 1000 == 0 else f"{self.window_ms} ms"
        return f"{self.limit} per {window}"


@dataclass(slots=True)
class GraphEdge:
    """Calls from one node to another, with RED figures, drawing path and badges."""

    parent: str
    child: str
    mode: str
    red: Red
    health: str
    path: str = ""
    box: Box = Box(0, 0, 0, 0)
    start: tuple[float, float] = (0.0, 0.0)
    end: tuple[float, float] = (0.0, 0.0)
    label: tuple[str, str] = ("", "")
    breaker: str = ""
    in_cycle: bool = False
    on_chain: bool = False
    backward: bool = False

    @property
    def is_async(self) -> bool:
        """Whether the edge goes through a producer and a consumer (or to a queue)."""
        return self.mode in ("async", "queue")

    @property
    def is_lookup(self) -> bool:
        """Whether the calls are registry lookups (service discovery)."""
        return self.mode in ("lookup", "peer-lookup")


@dataclass(slots=True)
class ServiceGraph:
    """Everything the graph page draws."""

    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    longest_chain: list[str] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    drawing: Drawing | None = None

    def node(self, name: str) -> GraphNode | None:
        """The node with this name, or None."""
        return next((n for n in self.nodes if n.name == name), None)

    def edge(self, parent: str, child: str) -> GraphEdge | None:
        """The edge parent -> child, or None."""
        return next((e for e in self.edges if e.parent == parent and e.child == child), None)


def build_digraph(edge_stats: Iterable[EdgeStats], operations: Iterable[OperationTraffic]) -> nx.DiGraph:
    """A DiGraph of services and peers; edge attributes: mode, count, errors, throttled,
    duration, histogram.

    Calls to a ``peer.service`` that is itself instrumented are already counted by the
    client/server pairing, so such peer edges are dropped when the pair edge exists.
    Edges of one pair in several modes are merged; the mode shown is the most
    synchronous one.
    """
    g = nx.DiGraph()
    services = {op.service for op in operations}
    for name in services:
        g.add_node(name, kind="service")
    by_pair: dict[tuple[str, str], list[EdgeStats]] = defaultdict(list)
    for e in edge_stats:
        by_pair[(e.parent, e.child)].append(e)
    for (parent, child), group in sorted(by_pair.items()):
        paired = [e for e in group if e.mode in _PAIRED]
        if paired:
            group = paired + [e for e in group if e.mode in ("database", "queue")]
        mode = min((e.mode for e in group), key=lambda m: _MODE_PRIORITY.get(m, 9))
        g.add_node(parent, kind="service")
        if child not in g:
            g.add_node(child, kind=_PEER_KINDS.get(mode, "service"))
        elif mode in _PAIRED:
            g.nodes[child]["kind"] = "service"
        g.add_edge(
            parent,
            child,
            mode=mode,
            count=sum(e.call_count for e in group),
            errors=sum(e.error_count for e in group),
            throttled=sum(e.throttled_count for e in group),
            duration=sum(e.duration_sum_ns for e in group),
            histogram=merge([e.histogram for e in group]),
        )
    for node in g.nodes:
        if node in services:
            g.nodes[node]["kind"] = "service"
    return g


def build_service_graph(
    edge_stats: Sequence[EdgeStats],
    operations: Sequence[OperationTraffic],
    window_ns: int,
    breaker_states: Mapping[tuple[str, str], str] | None = None,
) -> ServiceGraph:
    """Build the service graph for a window: RED per node and edge, layout, cycles, chain.

    ``breaker_states`` maps (caller, callee) to a breaker state; an open or half-open
    breaker puts a badge on that edge.
    """
    g = build_digraph(edge_stats, operations)
    per_service: dict[str, list[OperationTraffic]] = defaultdict(list)
    for op in operations:
        per_service[op.service].append(op)
    nodes: dict[str, GraphNode] = {}
    for name, data in g.nodes(data=True):
        if per_service.get(name):
            ops = per_service[name]
            r = red(
                sum(o.request_count for o in ops),
                sum(o.error_count for o in ops),
                sum(o.duration_sum_ns for o in ops),
                merge([o.histogram for o in ops]),
                window_ns,
                sum(o.throttled_count for o in ops),
            )
        else:
            incoming = [g.edges[p, name] for p in g.predecessors(name)]
            r = red(
                sum(e["count"] for e in incoming),
                sum(e["errors"] for e in incoming),
                sum(e["duration"] for e in incoming),
                merge([e["histogram"] for e in incoming]) if incoming else Histogram(()),
                window_ns,
                sum(e["throttled"] for e in incoming),
            )
        nodes[name] = GraphNode(
            name,
            data["kind"],
            r,
            health(r.error_rate, r.count),
            _label(readable_name(name, data["kind"])),
            rate_limit=rate_limit_of(per_service[name]),
        )
    edges = []
    states = breaker_states or {}
    for parent, child, data in g.edges(data=True):
        r = red(data["count"], data["errors"], data["duration"], data["histogram"], window_ns, data["throttled"])
        state = states.get((parent, child), "")
        edges.append(
            GraphEdge(
                parent,
                child,
                data["mode"],
                r,
                health(r.error_rate, r.count),
                breaker=state if state in ("open", "half_open") else "",
            )
        )
    graph = ServiceGraph(nodes=sorted(nodes.values(), key=lambda n: n.name), edges=edges)
    back = feedback_edges(g)
    _mark_cycles(graph, g)
    _mark_longest_chain(graph, g, back)
    _layout(graph, back)
    return graph


def feedback_edges(g: nx.DiGraph) -> set[tuple[str, str]]:
    """Edges whose removal leaves the graph acyclic: the back edges of a depth-first
    search started from the nodes nobody calls, in name order (deterministic)."""
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}
    roots = sorted(n for n in g.nodes if g.in_degree(n) == 0) + sorted(g.nodes)
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(sorted(g.successors(root))))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if state.get(child) == 1:
                    back.add((node, child))
                elif child not in state:
                    state[child] = 1
                    stack.append((child, iter(sorted(g.successors(child)))))
                    break
            else:
                state[node] = 2
                stack.pop()
    return back


def longest_sync_chain(g: nx.DiGraph, back: set[tuple[str, str]] | None = None) -> list[str]:
    """The longest chain of synchronous calls (most hops), ignoring cycle-closing edges."""
    back = feedback_edges(g) if back is None else back
    dag = nx.DiGraph()
    dag.add_edges_from((u, v) for u, v, d in g.edges(data=True) if d["mode"] == "sync" and (u, v) not in back)
    if dag.number_of_edges() == 0:
        return []
    return list(nx.dag_longest_path(dag, topo_order=list(nx.lexicographical_topological_sort(dag))))


def _mark_cycles(graph: ServiceGraph, g: nx.DiGraph) -> None:
    cycles = []
    for cycle in nx.simple_cycles(g, length_bound=len(g)):
        cycles.append(cycle)
        if len(cycles) >= MAX_CYCLES:
            break
    graph.cycles = [_rotate(c) for c in sorted(cycles, key=lambda c: (len(c), _rotate(c)))]
    in_cycle_edges = {(c[i], c[(i + 1) % len(c)]) for c in graph.cycles for i in range(len(c))}
    for e in graph.edges:
        e.in_cycle = (e.parent, e.child) in in_cycle_edges
    names = {n for c in graph.cycles for n in c}
    for n in graph.nodes:
        n.in_cycle = n.name in names


def _mark_longest_chain(graph: ServiceGraph, g: nx.DiGraph, back: set[tuple[str, str]]) -> None:
    chain = longest_sync_chain(g, back)
    graph.longest_chain = chain
    pairs = set(zip(chain, chain[1:]))
    for e in graph.edges:
        e.on_chain = (e.parent, e.child) in pairs
    for n in graph.nodes:
        n.on_chain = n.name in chain


def _layout(graph: ServiceGraph, back: set[tuple[str, str]]) -> None:
    for e in graph.edges:
        e.backward = (e.parent, e.child) in back
        e.label = edge_label(e)
    inputs = [
        EdgeInput(e.parent, e.child, e.backward, max(len(first), len(second) + DURATION_CHARS), bool(e.breaker))
        for e, (first, second) in ((e, e.label) for e in graph.edges)
    ]
    drawing = lay_out((n.name for n in graph.nodes), inputs)
    for n in graph.nodes:
        n.x, n.y = drawing.nodes[n.name]
        n.layer = drawing.layers[n.name]
    for e, d in zip(graph.edges, drawing.edges):
        e.path, e.box = d.path, d.label
        e.start, e.end = d.points[0], d.points[-1]
    graph.width, graph.height = drawing.width, drawing.height
    graph.drawing = drawing


def edge_label(e: GraphEdge) -> tuple[str, str]:
    """The edge's label, two lines: requests per second and error rate; throttled calls (if
    any) and ``p99 `` (the page appends the formatted duration)."""
    first = f"{per_second(e.red.rate_per_s)}/s · {e.red.error_rate * 100:.0f}% err"
    second = f"{e.red.throttled_count} throttled · " if e.red.throttled_count else ""
    return first, second + "p99 "


def per_second(rate: float) -> str:
    """A rate as few digits as tell it: ``240``, ``12.5``, ``0.42``, ``<0.01`` or ``0``."""
    if rate >= 100:
        return f"{rate:.0f}"
    if rate >= 10:
        return f"{rate:.1f}"
    if rate >= 0.01 or rate == 0:
        return f"{rate:.2f}".rstrip("0").rstrip(".") if rate else "0"
    return "<0.01"


def rate_limit_of(ops: Sequence[OperationTraffic]) -> RateLimit | None:
    """The rate limit the service's operations record (the strictest, if they differ)."""
    limits = [RateLimit(o.rate_limit, o.rate_limit_window_ms) for o in ops if o.rate_limit is not None]
    return min(limits, key=lambda r: (r.limit / max(r.window_ms or 1000, 1), r.limit)) if limits else None


def readable_name(name: str, kind: str) -> str:
    """How a node reads on the graph. A database or queue named by span attributes is
    ``system:namespace`` (``sqlite:/srv/data/orders.db``, ``spyglass-outbox:OrderPlaced``):
    it reads as its namespace's last part and its kind (``orders.db database``,
    ``OrderPlaced queue``). Services and peers named by ``peer.service`` read as named."""
    word = _KIND_WORDS.get(kind)
    if word is None or ":" not in name:
        return name
    system, namespace = name.split(":", 1)
    last = namespace.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or namespace
    return f"{last} {word}" if last else f"{system} {word}"


def _label(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


def _rotate(cycle: list[str]) -> list[str]:
    i = cycle.index(min(cycle))
    return cycle[i:] + cycle[:i]
