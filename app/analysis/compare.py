"""Structural diff of two traces: spans matched by service, operation and position.

A span's key is its parent's key plus (service, operation, ordinal), where the ordinal
counts earlier siblings with the same service and operation (siblings in start order).
Two spans in different traces match when their keys are equal. Keys are interned as
small integers shared by both traces, so matching is linear in the number of spans.

The merged tree lists every key once, siblings in A's order with B-only spans slotted
in by their start (relative to their parent); each row carries both durations, the change from A to B in ns and as a ratio,
its level on a diverging scale (-3 much faster .. +3 much slower) and the text that says
the same thing without colour. Pure: no Flask, no SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from collectors.model import Span, SpanOutline

AnySpan = Span | SpanOutline
"""Whole spans or their outlines: the diff reads ids, service, name, times and status."""

ONLY_A = "only-a"
ONLY_B = "only-b"
BOTH = "both"
WHERE_TEXT = {BOTH: "in both", ONLY_A: "missing in B", ONLY_B: "added in B"}

BIGGEST = 15
"""How many of the largest changes the summary lists."""
LEVEL_RATIOS = (0.05, 0.25, 1.0)
"""|ratio| at or above each bound raises the level by one: 5 %, 25 %, 100 %."""
LEVEL_NS = (100_000, 1_000_000, 10_000_000)
"""The same for |change|: 0.1 ms, 1 ms, 10 ms; a level needs both (a tiny span that doubles is no alarm)."""
LEVEL_TEXT = {
    -3: "much faster",
    -2: "faster",
    -1: "slightly faster",
    0: "about the same",
    1: "slightly slower",
    2: "slower",
    3: "much slower",
}


@dataclass(slots=True)
class DiffRow:
    """One node of the merged tree: present in A, in B or in both.

    Read-only by convention; not ``frozen``, which would make building the 10,000 rows
    of two large traces several times slower (as for collectors.model.Span).

    Bars (``a_bar``, ``b_bar``) are (offset, width) in percent of the longer trace,
    measured from each trace's own start; None where the span is absent.
    """

    index: int
    key: int
    parent_index: int | None
    depth: int
    service: str
    operation: str
    ordinal: int
    where: str
    a_ns: int | None
    b_ns: int | None
    a_error: bool
    b_error: bool
    a_span_id: str
    b_span_id: str
    a_bar: tuple[float, float] | None
    b_bar: tuple[float, float] | None
    level: int
    has_children: bool

    @property
    def delta_ns(self) -> int | None:
        """B minus A, when the span is in both."""
        if self.a_ns is None or self.b_ns is None:
            return None
        return self.b_ns - self.a_ns

    @property
    def delta_ratio(self) -> float | None:
        """Relative change from A to B, when both are present and A is non-zero."""
        delta = self.delta_ns
        if delta is None or not self.a_ns:
            return None
        return delta / self.a_ns

    @property
    def change_ns(self) -> int:
        """What the span adds to B's time: the delta, all of B's span when added, minus
        all of A's when missing (how the biggest changes are ranked, by absolute value)."""
        if self.a_ns is None:
            return self.b_ns or 0
        if self.b_ns is None:
            return -self.a_ns
        return self.b_ns - self.a_ns

    @property
    def ms_text(self) -> str:
        """The change in milliseconds with its sign, e.g. ``+45.2 ms``."""
        return signed_ms(self.change_ns)

    @property
    def percent_text(self) -> str:
        """The relative change, e.g. ``+505 %``; empty when it has no meaning."""
        ratio = self.delta_ratio
        return "" if ratio is None else signed_percent(ratio)

    @property
    def a_bar_style(self) -> str:
        """A's bar as CSS ``left``/``width`` (empty when absent)."""
        return _bar_style(self.a_bar)

    @property
    def b_bar_style(self) -> str:
        """B's bar as CSS ``left``/``width`` (empty when absent)."""
        return _bar_style(self.b_bar)

    @property
    def level_text(self) -> str:
        """The level in words (what the colour says)."""
        if self.where != BOTH:
            return WHERE_TEXT[self.where]
        return LEVEL_TEXT[self.level]


@dataclass(frozen=True, slots=True)
class TraceDiff:
    """The merged rows, how many spans fell in each group, and the biggest changes."""

    rows: list[DiffRow]
    only_a: int
    only_b: int
    both: int
    a_duration_ns: int
    b_duration_ns: int
    biggest: list[DiffRow]

    @property
    def duration_delta_ns(self) -> int:
        """B's duration minus A's (first span start to last span end)."""
        return self.b_duration_ns - self.a_duration_ns

    @property
    def level(self) -> int:
        """The whole trace's change on the diverging scale."""
        delta = self.duration_delta_ns
        return change_level(delta, delta / self.a_duration_ns if self.a_duration_ns else None)

    @property
    def duration_text(self) -> str:
        """The whole trace's change, e.g. ``+120 ms (+24 %)``."""
        text = signed_ms(self.duration_delta_ns)
        if self.a_duration_ns:
            text += f" ({signed_percent(self.duration_delta_ns / self.a_duration_ns)})"
        return text


def signed_ms(delta_ns: int) -> str:
    """Milliseconds with an explicit sign and two significant decimals below 10 ms."""
    ms = abs(delta_ns) / 1_000_000
    if ms == 0:
        return "±0 ms"
    digits = 2 if ms < 10 else 1 if ms < 100 else 0
    sign = "+" if delta_ns > 0 else "−"
    return f"{sign}{ms:,.{digits}f} ms"


def signed_percent(ratio: float) -> str:
    """A ratio as a signed whole percentage (``+505 %``, ``−8 %``, ``±0 %``)."""
    pct = round(ratio * 100)
    if pct == 0:
        return "±0 %"
    return f"{'+' if pct > 0 else '−'}{abs(pct):,} %"


def change_level(delta_ns: int | None, ratio: float | None) -> int:
    """The change on a diverging scale from -3 (much faster) to +3 (much slower).

    The lower of two counts: the bounds of LEVEL_RATIOS that |ratio| reaches (a change
    from zero reaches them all) and the bounds of LEVEL_NS that |delta| reaches. Neutral
    for no change or an absent side.
    """
    if delta_ns is None:
        return 0
    size = abs(ratio) if ratio is not None else float("inf")
    by_ratio = sum(1 for bound in LEVEL_RATIOS if size >= bound)
    by_time = sum(1 for bound in LEVEL_NS if abs(delta_ns) >= bound)
    level = min(by_ratio, by_time)
    return level if delta_ns > 0 else -level


def span_keys(spans: list[AnySpan], intern: dict[tuple[int, str, str, int], int]) -> dict[int, AnySpan]:
    """Each span under its structural key (interned in ``intern``, 0 being above the roots).

    Parents are visited before children, siblings in start order; spans whose parent is
    missing (or in a cycle) are treated as roots.
    """
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[AnySpan]] = defaultdict(list)
    roots: list[AnySpan] = []
    for s in spans:
        if s.parent_span_id and s.parent_span_id in by_id and s.parent_span_id != s.span_id:
            children[s.parent_span_id].append(s)
        else:
            roots.append(s)
    out: dict[int, AnySpan] = {}
    seen: set[str] = set()
    pending = sorted(spans, key=_start_order, reverse=True)
    tops = sorted(roots, key=_start_order)
    ordinals: dict[tuple[int, str, str], int] = defaultdict(int)
    while tops:
        stack: list[tuple[int, AnySpan]] = []
        for s in reversed(tops):
            stack.append((0, s))
        # Ordinals of roots are counted in start order, so number them before the walk.
        numbered: dict[str, int] = {}
        for s in tops:
            step = (0, s.service, s.name)
            numbered[s.span_id] = ordinals[step]
            ordinals[step] += 1
        while stack:
            parent_key, s = stack.pop()
            if s.span_id in seen:
                continue
            seen.add(s.span_id)
            ordinal = numbered.pop(s.span_id)
            key = intern.setdefault((parent_key, s.service, s.name, ordinal), len(intern) + 1)
            out[key] = s
            kids = sorted((k for k in children.get(s.span_id, ()) if k.span_id not in seen), key=_start_order)
            counts: dict[tuple[str, str], int] = defaultdict(int)
            for k in kids:
                numbered[k.span_id] = counts[(k.service, k.name)]
                counts[(k.service, k.name)] += 1
            stack.extend((key, k) for k in reversed(kids))
        # Spans in a parent cycle were never reached from a root: the earliest becomes one.
        while pending and pending[-1].span_id in seen:
            pending.pop()
        tops = [pending.pop()] if pending else []
    return out


def compare_traces(a: list[AnySpan], b: list[AnySpan]) -> TraceDiff:
    """Merge the two span trees: siblings in A's order, a B-only span placed among them
    by when it started after its parent."""
    intern: dict[tuple[int, str, str, int], int] = {}
    a_by = span_keys(a, intern)
    b_by = span_keys(b, intern)
    steps = {key: step for step, key in intern.items()}
    children: dict[int, list[int]] = defaultdict(list)
    for key in [*a_by, *(k for k in b_by if k not in a_by)]:
        children[steps[key][0]].append(key)
    a_start, a_end = _bounds(a)
    b_start, b_end = _bounds(b)

    def offset(key: int) -> int:
        # When the span started after its parent (or its trace, for a root), in its trace.
        parent = steps[key][0]
        if key in a_by:
            above = a_by.get(parent)
            return a_by[key].start_ns - (above.start_ns if above else a_start)
        above = b_by.get(parent)
        return b_by[key].start_ns - (above.start_ns if above else b_start)

    for siblings in children.values():
        if len(siblings) > 1 and siblings[-1] not in a_by:
            siblings.sort(key=offset)  # stable: A's order kept, B-only spans slotted in by start
    scale = max(1, a_end - a_start, b_end - b_start)
    rows: list[DiffRow] = []
    stack: list[tuple[int, int | None, int]] = [(k, None, 0) for k in reversed(children[0])]
    while stack:
        key, parent_index, depth = stack.pop()
        sa, sb = a_by.get(key), b_by.get(key)
        _, service, operation, ordinal = steps[key]
        a_ns = sa.duration_ns if sa else None
        b_ns = sb.duration_ns if sb else None
        delta = b_ns - a_ns if a_ns is not None and b_ns is not None else None
        index = len(rows)
        rows.append(
            DiffRow(
                index=index,
                key=key,
                parent_index=parent_index,
                depth=depth,
                service=service,
                operation=operation,
                ordinal=ordinal,
                where=BOTH if sa and sb else ONLY_A if sa else ONLY_B,
                a_ns=a_ns,
                b_ns=b_ns,
                a_error=bool(sa and sa.is_error),
                b_error=bool(sb and sb.is_error),
                a_span_id=sa.span_id if sa else "",
                b_span_id=sb.span_id if sb else "",
                a_bar=_bar(sa, a_start, scale),
                b_bar=_bar(sb, b_start, scale),
                level=change_level(delta, delta / a_ns if delta is not None and a_ns else None),
                has_children=key in children,
            )
        )
        stack.extend((k, index, depth + 1) for k in reversed(children.get(key, ())))
    counts = {BOTH: 0, ONLY_A: 0, ONLY_B: 0}
    for r in rows:
        counts[r.where] += 1
    return TraceDiff(
        rows=rows,
        only_a=counts[ONLY_A],
        only_b=counts[ONLY_B],
        both=counts[BOTH],
        a_duration_ns=a_end - a_start,
        b_duration_ns=b_end - b_start,
        biggest=biggest_changes(rows),
    )


def biggest_changes(rows: list[DiffRow], limit: int = BIGGEST) -> list[DiffRow]:
    """The rows that changed B's time the most (absolute ms), largest first; ties keep tree order."""
    changed = [r for r in rows if r.change_ns]
    changed.sort(key=lambda r: -abs(r.change_ns))
    return changed[:limit]


def _start_order(s: AnySpan) -> tuple[int, str]:
    return (s.start_ns, s.span_id)


def _bounds(spans: list[AnySpan]) -> tuple[int, int]:
    if not spans:
        return 0, 0
    return min(s.start_ns for s in spans), max(s.end_ns for s in spans)


def _bar(s: AnySpan | None, start_ns: int, scale: int) -> tuple[float, float] | None:
    if s is None:
        return None
    offset = min(1.0, max(0.0, (s.start_ns - start_ns) / scale))
    width = min(1.0 - offset, max(0.0, s.duration_ns / scale))
    return round(offset * 100, 2), round(width * 100, 2)


def _bar_style(bar: tuple[float, float] | None) -> str:
    return f"left:{bar[0]}%;width:{bar[1]}%" if bar else ""
