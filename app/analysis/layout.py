"""The service graph's drawing: a layered layout (callers left, callees right) whose every
box, nodes and edge labels alike, is computed here so that none overlaps another.

* Layers by call depth: a node sits one column right of its deepest caller (cycle-closing
  edges are drawn against the flow and do not count).
* Order within a column, top to bottom: the first column by name, every other one by the
  mean row of its callers in the column before (then by name). One pass from left to right,
  so a new node moves only what comes after it, and the same graph always gets the same
  drawing (a live refresh does not jump).
* An edge that skips columns passes each one it crosses through a slot of its own, so it
  never runs through a node.
* An edge's label sits in the gap right of the column its line starts from, on its line
  (the line runs into the label and out of it), level with where the line enters the next
  column (so a caller's many calls have their labels beside their targets); labels of one
  gap are stacked so none overlaps another (a run that would collide is centred on what its
  labels want), and each gap is as wide as its widest label, so no label reaches a node.
* Lines leave their source at its border (right side for a call, left side for a call
  back against the flow) at a port of their own, and end at the target's border, where
  the arrowhead is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

NODE_W = 196
NODE_H = 54
PAD = 18
ROW_GAP = 22
SLOT_H = 10
GAP_MIN = 64
LABEL_PAD = 14
LABEL_H = 28
BADGE_H = 16
LABEL_SPACING = 4
CHAR_W = 6.6
"""Width of one character of a label at 10 px, a little over the widest digit of common
sans-serif faces (DejaVu Sans: 6.4 px), so that the box drawn holds the text rendered."""
DURATION_CHARS = 7
"""The longest a formatted duration gets (``1e+03ms``, ``3m05s``)."""


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned rectangle: left, top, width, height."""

    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: Box) -> bool:
        """Whether the two boxes share any area (touching edges do not count)."""
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )


@dataclass(frozen=True, slots=True)
class EdgeInput:
    """What the layout needs of an edge: its ends, whether it closes a cycle (drawn against
    the flow), the character count of the label's longest line (it has two) and whether the
    label carries a badge."""

    parent: str
    child: str
    backward: bool
    label_chars: int
    badge: bool


@dataclass(slots=True)
class EdgeDrawing:
    """Where an edge is drawn: its points (source border first, target border last), its
    SVG path through them and the box of its label (and badge, below the text)."""

    points: list[tuple[float, float]]
    path: str
    label: Box


@dataclass(slots=True)
class Drawing:
    """Positions of every node (top-left corner) and edge, and the canvas size."""

    nodes: dict[str, tuple[float, float]]
    layers: dict[str, int]
    edges: list[EdgeDrawing]
    width: float
    height: float

    def boxes(self) -> list[tuple[str, Box]]:
        """Every drawn box: ``("node", box)`` and ``("label", box)``, for overlap checks."""
        out = [("node:" + name, Box(x, y, NODE_W, NODE_H)) for name, (x, y) in self.nodes.items()]
        out += [(f"label:{i}", e.label) for i, e in enumerate(self.edges)]
        return out


def label_width(chars: int) -> float:
    """The width of a label box holding ``chars`` characters."""
    return round(chars * CHAR_W + 10, 1)


def lay_out(names: Iterable[str], edges: list[EdgeInput]) -> Drawing:
    """Place the nodes and route the edges (see the module's description)."""
    names = sorted(set(names))
    # Orient every edge left to right: a cycle-closing edge is laid out reversed.
    oriented = [(e.child, e.parent) if e.backward else (e.parent, e.child) for e in edges]
    preds: dict[str, set[str]] = defaultdict(set)
    succs: dict[str, set[str]] = defaultdict(set)
    for a, b in oriented:
        if a != b:
            preds[b].add(a)
            succs[a].add(b)
    layer = _layers(names, preds, succs)
    # Ties are broken by the edge's ends, never by the order the edges came in.
    order = sorted(range(len(edges)), key=lambda i: (edges[i].parent, edges[i].child, edges[i].backward))
    rank = {i: r for r, i in enumerate(order)}

    # Slots: a real node, or one column an edge passes through (its key says which).
    chains: list[list[str]] = []
    slot_preds: dict[str, list[str]] = defaultdict(list)
    columns: dict[int, list[str]] = defaultdict(list)
    for n in names:
        columns[layer[n]].append(n)
    for i, (a, b) in enumerate(oriented):
        chain = [a]
        for k in range(layer[a] + 1, layer[b]):
            slot = f"\x00{rank[i]:06d}:{k}"
            columns[k].append(slot)
            chain.append(slot)
        chain.append(b)
        chains.append(chain if a != b else [a])
        for u, v in zip(chain, chain[1:]):
            slot_preds[v].append(u)
    height_of = {n: NODE_H for n in names}

    # Order and stack each column from left to right (one pass: stable, see above).
    y: dict[str, float] = {}
    row: dict[str, float] = {}
    depth = max(layer.values(), default=0)
    for k in range(depth + 1):

        def key(slot: str) -> tuple[float, str]:
            linked = [row[p] for p in slot_preds.get(slot, ()) if p in row and p in y]
            return (sum(linked) / len(linked) if linked and k > 0 else 0.0, slot.lstrip("\x00"))

        columns[k].sort(key=key)
        cursor = PAD
        for i, slot in enumerate(columns[k]):
            h = height_of.get(slot, SLOT_H)
            linked = [y[p] + height_of.get(p, SLOT_H) / 2 for p in slot_preds.get(slot, ()) if p in y]
            wanted = sum(linked) / len(linked) - h / 2 if linked else cursor
            y[slot] = max(cursor, wanted)
            row[slot] = i
            cursor = y[slot] + h + ROW_GAP

    # Ports: each edge leaves the right side of its left end and enters the left side of
    # its right end, spread along the side in the order of the other end's height.
    right: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    left: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for i, chain in enumerate(chains):
        if len(chain) == 1:
            right[chain[0]].append((-1.0, rank[i], i))
            right[chain[0]].append((-0.5, rank[i], i))
            continue
        right[chain[0]].append((_centre(y, height_of, chain[1]), rank[i], i))
        left[chain[-1]].append((_centre(y, height_of, chain[-2]), rank[i], i))
    port_y: dict[tuple[str, int, str], float] = {}
    for side, table in (("r", right), ("l", left)):
        for name, ports in table.items():
            ports.sort()
            for j, (_, _, i) in enumerate(ports):
                slot_key = (name, i, side + ("2" if (name, i, side) in port_y else ""))
                port_y[slot_key] = y[name] + NODE_H * (j + 1) / (len(ports) + 1)

    # Labels: stacked in the gap right of their start column, near where the line crosses it.
    in_gap: dict[int, list[tuple[float, int, int, float, float]]] = defaultdict(list)
    for i, (e, chain) in enumerate(zip(edges, chains)):
        w = label_width(e.label_chars)
        h = LABEL_H + (BADGE_H if e.badge else 0)
        start = port_y[(chain[0], i, "r")]
        if len(chain) == 1:
            wanted = (start + port_y[(chain[0], i, "r2")]) / 2
        else:
            nxt = port_y[(chain[1], i, "l")] if len(chain) == 2 else _centre(y, height_of, chain[1])
            wanted = nxt
        in_gap[layer[chain[0]]].append((wanted, rank[i], i, w, h))
    gap_w = {k: max([GAP_MIN] + [w + 2 * LABEL_PAD for _, _, _, w, _ in in_gap.get(k, [])]) for k in range(depth + 1)}
    col_x = {0: float(PAD)}
    for k in range(1, depth + 1):
        col_x[k] = col_x[k - 1] + NODE_W + gap_w[k - 1]
    labels: dict[int, Box] = {}
    bottom = 0.0
    for k, items in in_gap.items():
        gap_left = col_x[k] + NODE_W
        ordered = sorted(items)
        tops = _stack([wanted - LABEL_H / 2 for wanted, *_ in ordered], [h for *_, h in ordered])
        for top, (_, _, i, w, h) in zip(tops, ordered):
            labels[i] = Box(round(gap_left + (gap_w[k] - w) / 2, 1), round(top, 1), w, h)
            bottom = max(bottom, top + h)

    drawings = []
    for i, (e, chain) in enumerate(zip(edges, chains)):
        drawings.append(_route(e, i, chain, labels[i], port_y, y, height_of, col_x, layer))
    nodes = {n: (col_x[layer[n]], round(y[n], 1)) for n in names}
    tallest = max([y[s] + height_of.get(s, SLOT_H) for s in y] + [bottom], default=0)
    trailing = max((gap_w[depth] for k in in_gap if k == depth), default=0)
    width = col_x[depth] + NODE_W + trailing + PAD if names else 0
    return Drawing(nodes, layer, drawings, round(width, 1), round(tallest + PAD, 1) if names else 0)


def _stack(wanted: list[float], heights: list[float]) -> list[float]:
    """Tops for boxes kept in this order, none overlapping the next, each as near its wanted
    top as the others allow: runs of boxes that would collide are placed together, centred
    on what their members want (never above the canvas's padding)."""
    runs: list[list[float]] = []  # [top, height, sum of (wanted - offset), count, first index]
    for i, (want, h) in enumerate(zip(wanted, heights)):
        run = [max(want, PAD), h, want, 1, i]
        while runs and runs[-1][0] + runs[-1][1] + LABEL_SPACING > run[0]:
            prev = runs.pop()
            offset = prev[1] + LABEL_SPACING
            total, count = prev[2] + run[2] - offset * run[3], prev[3] + run[3]
            run = [max(total / count, PAD), offset + run[1], total, count, prev[4]]
        runs.append(run)
    tops = []
    for n, run in enumerate(runs):
        end = runs[n + 1][4] if n + 1 < len(runs) else len(wanted)
        top = run[0]
        for i in range(run[4], end):
            tops.append(top)
            top += heights[i] + LABEL_SPACING
    return tops


def _layers(names: list[str], preds: dict[str, set[str]], succs: dict[str, set[str]]) -> dict[str, int]:
    """Longest path from a node nobody calls (Kahn's order, by name: deterministic)."""
    remaining = {n: len(preds[n]) for n in names}
    ready = sorted(n for n in names if remaining[n] == 0)
    layer = {n: 0 for n in names}
    while ready:
        n = ready.pop(0)
        for m in sorted(succs[n]):
            layer[m] = max(layer[m], layer[n] + 1)
            remaining[m] -= 1
            if remaining[m] == 0:
                ready.append(m)
        ready.sort()
    return layer


def _centre(y: dict[str, float], height_of: dict[str, int], slot: str) -> float:
    return y[slot] + height_of.get(slot, SLOT_H) / 2


def _route(
    e: EdgeInput,
    i: int,
    chain: list[str],
    label: Box,
    port_y: dict[tuple[str, int, str], float],
    y: dict[str, float],
    height_of: dict[str, int],
    col_x: dict[int, float],
    layer: dict[str, int],
) -> EdgeDrawing:
    """The points of an edge's line, left to right: the start port, through the label,
    through each column it crosses, to the end port; reversed for an edge drawn back."""
    first = chain[0]
    mid = label.y + LABEL_H / 2
    points = [(col_x[layer[first]] + NODE_W, port_y[(first, i, "r")]), (label.x, mid), (label.x + label.w, mid)]
    if len(chain) == 1:
        end = (col_x[layer[first]] + NODE_W, port_y[(first, i, "r2")])
        return EdgeDrawing(points + [end], _path(points) + " " + _loop_back(label, end), label)
    for slot in chain[1:-1]:
        k = int(slot.rsplit(":", 1)[1])
        cy = _centre(y, height_of, slot)
        points += [(col_x[k], cy), (col_x[k] + NODE_W, cy)]
    last = chain[-1]
    points.append((col_x[layer[last]], port_y[(last, i, "l")]))
    if e.backward:
        points.reverse()
    return EdgeDrawing(points, _path(points), label)


def _loop_back(label: Box, end: tuple[float, float]) -> str:
    """A call of a node to itself returns from its label around the label's right side and
    under it, back to the node's border."""
    xr, mid = label.x + label.w, label.y + LABEL_H / 2
    below = label.y + label.h + 6
    xc = label.x + label.w / 2
    ex, ey = end
    bend = (xc + ex) / 2
    return (
        f"C{xr + 14:.1f},{mid:.1f} {xr + 14:.1f},{below:.1f} {xc:.1f},{below:.1f} "
        f"C{bend:.1f},{below:.1f} {bend:.1f},{ey:.1f} {ex:.1f},{ey:.1f}"
    )


def _path(points: list[tuple[float, float]]) -> str:
    """Horizontal-tangent cubic curves between the points (straight where level)."""
    (x0, y0), *rest = points
    out = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        if y1 == y0:
            out.append(f"L{x1:.1f},{y1:.1f}")
        else:
            mx = (x0 + x1) / 2
            out.append(f"C{mx:.1f},{y0:.1f} {mx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(out)
