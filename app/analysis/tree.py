"""The span tree of one trace as a view model: waterfall rows, orphans, skew, critical path.

Pure functions over :class:`collectors.model.Span` lists: no Flask, no SQL. The tree is
walked iteratively, so very deep traces do not hit Python's recursion limit, and every
span appears exactly once in :attr:`TraceView.rows`, whatever the input: a span whose
parent never arrived is kept as a root marked ``orphan``, and spans caught in a parent
cycle (possible with hostile input) are broken out as orphan roots too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from collectors.model import SPAN_KIND_NAMES, Span

SERVICE_COLOURS = 12
"""Services cycle through this many colour classes (``svc-0`` … ``svc-11``)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One waterfall row: a span placed on the trace's shared time axis.

    ``offset`` and ``width`` are fractions of the trace duration (0..1) after skew
    adjustment; ``skew_ns`` is the shift applied to this span itself (0 if none) and
    ``shift_ns`` the total shift including its ancestors'.
    """

    span: Span
    index: int
    depth: int
    parent_id: str
    child_count: int
    start_ns: int
    end_ns: int
    offset: float
    width: float
    orphan: bool
    skew_ns: int
    shift_ns: int
    critical: bool
    self_ns: int
    colour: int
    links_in: tuple[tuple[str, str], ...]
    match: bool

    @property
    def span_id(self) -> str:
        """The row's span id."""
        return self.span.span_id

    @property
    def duration_ns(self) -> int:
        """Duration of the span (skew adjustment moves spans, never stretches them)."""
        return self.end_ns - self.start_ns

    @property
    def kind_name(self) -> str:
        """The span kind in lower case (``server``, ``client`` …)."""
        return SPAN_KIND_NAMES.get(self.span.kind, "unspecified")


@dataclass(frozen=True, slots=True)
class TraceOperationStats:
    """Figures for one (service, operation) pair within a trace."""

    service: str
    operation: str
    count: int
    total_ns: int
    self_ns: int
    min_ns: int
    max_ns: int
    errors: int

    @property
    def avg_ns(self) -> int:
        """Mean duration."""
        return self.total_ns // self.count if self.count else 0


@dataclass(frozen=True, slots=True)
class TraceView:
    """Everything the trace page shows, computed once per request."""

    trace_id: str
    rows: list[Row]
    root: Span | None
    start_ns: int
    end_ns: int
    services: list[tuple[str, int]]
    depth: int
    error_count: int
    orphan_count: int
    skew_count: int
    skew_adjusted: bool
    match_count: int
    query: str
    error_ids: list[str] = field(default_factory=list)

    @property
    def duration_ns(self) -> int:
        """First start to last end, after skew adjustment."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def span_count(self) -> int:
        """Number of spans in the trace."""
        return len(self.rows)

    def row(self, span_id: str) -> Row | None:
        """The row of a span, or None when the trace has no such span."""
        for r in self.rows:
            if r.span.span_id == span_id:
                return r
        return None


def build_trace_view(spans: list[Span], *, adjust_skew: bool = True, query: str = "") -> TraceView:
    """Lay out a trace as waterfall rows in depth-first order (children by start time)."""
    if not spans:
        return TraceView("", [], None, 0, 0, [], 0, 0, 0, 0, adjust_skew, 0, query)
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots: list[Span] = []
    for s in spans:
        if s.parent_span_id and s.parent_span_id in by_id and s.parent_span_id != s.span_id:
            children[s.parent_span_id].append(s)
        else:
            roots.append(s)
    for kids in children.values():
        kids.sort(key=_order)
    roots.sort(key=_order)

    placed = _walk(roots, children, by_id, adjust_skew)
    if len(placed) < len(by_id):
        # Whatever was not reached sits on a parent cycle: cut it at its earliest span.
        seen = {p.span.span_id for p in placed}
        rest = sorted((s for s in spans if s.span_id not in seen), key=_order)
        while rest:
            placed += _walk([rest[0]], children, by_id, adjust_skew, seen=seen, cycle=True)
            seen = {p.span.span_id for p in placed}
            rest = [s for s in rest if s.span_id not in seen]

    start = min(p.start for p in placed)
    end = max(p.end for p in placed)
    total = max(1, end - start)
    critical = _critical_path(placed)
    self_time = _self_times(placed)
    incoming = _incoming_links(spans)
    child_counts: dict[str, int] = defaultdict(int)
    for p in placed:
        if p.parent_id:
            child_counts[p.parent_id] += 1
    services = sorted({s.service for s in spans})
    colours = {name: i % SERVICE_COLOURS for i, name in enumerate(services)}
    needle = query.strip().lower()
    rows = []
    for i, p in enumerate(placed):
        s = p.span
        rows.append(
            Row(
                span=s,
                index=i,
                depth=p.depth,
                parent_id=p.parent_id,
                child_count=child_counts.get(s.span_id, 0),
                start_ns=p.start,
                end_ns=p.end,
                offset=(p.start - start) / total,
                width=(p.end - p.start) / total,
                orphan=p.orphan,
                skew_ns=p.skew,
                shift_ns=p.shift,
                critical=s.span_id in critical,
                self_ns=self_time.get(s.span_id, p.end - p.start),
                colour=colours[s.service],
                links_in=tuple(incoming.get(s.span_id, ())),
                match=bool(needle) and span_matches(s, needle),
            )
        )
    root = next((r.span for r in rows if not r.span.parent_span_id), rows[0].span)
    return TraceView(
        trace_id=spans[0].trace_id,
        rows=rows,
        root=root,
        start_ns=start,
        end_ns=end,
        services=[(name, colours[name]) for name in services],
        depth=max(r.depth for r in rows) + 1,
        error_count=sum(1 for r in rows if r.span.is_error),
        orphan_count=sum(1 for r in rows if r.orphan),
        skew_count=sum(1 for r in rows if r.skew_ns),
        skew_adjusted=adjust_skew,
        match_count=sum(1 for r in rows if r.match),
        query=query,
        error_ids=[r.span.span_id for r in rows if r.span.is_error],
    )


def span_matches(span: Span, needle: str) -> bool:
    """Whether a lower-cased search string occurs in a span's name, service, id, status
    message, attributes, or its events' names and attributes."""
    if needle in span.name.lower() or needle in span.service.lower() or needle == span.span_id:
        return True
    if needle in span.status_message.lower() or _attributes_match(span.attributes, needle):
        return True
    return any(needle in e.name.lower() or _attributes_match(e.attributes, needle) for e in span.events)


def trace_operation_stats(view: TraceView) -> list[TraceOperationStats]:
    """Per (service, operation): count, total, self time, min/max; slowest self time first."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in view.rows:
        groups[(r.span.service, r.span.name)].append(r)
    out = [
        TraceOperationStats(
            service=svc,
            operation=op,
            count=len(rows),
            total_ns=sum(r.duration_ns for r in rows),
            self_ns=sum(r.self_ns for r in rows),
            min_ns=min(r.duration_ns for r in rows),
            max_ns=max(r.duration_ns for r in rows),
            errors=sum(1 for r in rows if r.span.is_error),
        )
        for (svc, op), rows in groups.items()
    ]
    out.sort(key=lambda s: (-s.self_ns, s.service, s.operation))
    return out


def critical_path_ids(view: TraceView) -> list[str]:
    """Span ids on the critical path, in row order."""
    return [r.span.span_id for r in view.rows if r.critical]


# -- private helpers ------------------------------------------------------------------------


def _attributes_match(attributes: dict, needle: str) -> bool:
    for key, value in attributes.items():
        if needle in key.lower() or needle in str(value).lower() or needle in f"{key}={value}".lower():
            return True
    return False


@dataclass(slots=True)
class _Placed:
    span: Span
    depth: int
    parent_id: str
    start: int
    end: int
    skew: int
    shift: int
    orphan: bool


def _order(s: Span) -> tuple[int, str]:
    return (s.start_ns, s.span_id)


def _walk(
    roots: list[Span],
    children: dict[str, list[Span]],
    by_id: dict[str, Span],
    adjust_skew: bool,
    *,
    seen: set[str] | None = None,
    cycle: bool = False,
) -> list[_Placed]:
    """Depth-first placement with an explicit stack; children inherit their parent's shift."""
    seen = set() if seen is None else set(seen)
    out: list[_Placed] = []
    stack: list[tuple[Span, int, _Placed | None]] = [(r, 0, None) for r in reversed(roots)]
    while stack:
        span, depth, parent = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        shift = parent.shift if parent else 0
        start, end = span.start_ns + shift, span.end_ns + shift
        end = max(end, start)
        skew = 0
        if adjust_skew and parent is not None and span.service != parent.span.service:
            skew = _skew_shift(start, end, parent.start, parent.end)
            start, end, shift = start + skew, end + skew, shift + skew
        orphan = parent is None and (bool(span.parent_span_id) or cycle)
        placed = _Placed(span, depth, parent.span.span_id if parent else "", start, end, skew, shift, orphan)
        out.append(placed)
        for child in reversed(children.get(span.span_id, ())):
            if child.span_id not in seen:
                stack.append((child, depth + 1, placed))
    return out


def _skew_shift(start: int, end: int, parent_start: int, parent_end: int) -> int:
    """How far to move a child from another host so that it lies inside its parent.

    A child that already fits is left alone. One that sticks out is centred in its
    parent when it is shorter (network latency split evenly both ways, as Jaeger
    assumes), or aligned to its parent's start when it is longer.
    """
    if start >= parent_start and end <= parent_end:
        return 0
    duration, parent_duration = end - start, parent_end - parent_start
    if duration <= parent_duration:
        return parent_start + (parent_duration - duration) // 2 - start
    return parent_start - start


def _critical_path(placed: list[_Placed]) -> set[str]:
    """Spans on the critical path: from each root, walk back from its end through the
    child that finished last, then the child that finished last before that one
    started, and so on (Jaeger's definition, on adjusted times, ends clipped to the
    parent). A child still running when the next one started did not delay it."""
    kids: dict[str, list[_Placed]] = defaultdict(list)
    for p in placed:
        if p.parent_id:
            kids[p.parent_id].append(p)
    out: set[str] = set()
    stack = [p for p in placed if not p.parent_id]
    while stack:
        node = stack.pop()
        out.add(node.span.span_id)
        cursor = node.end
        for child in sorted(kids.get(node.span.span_id, ()), key=lambda c: (-min(c.end, node.end), c.start)):
            if cursor <= node.start:
                break
            if min(child.end, node.end) <= cursor:
                stack.append(child)
                cursor = child.start
    return out


def _self_times(placed: list[_Placed]) -> dict[str, int]:
    """Duration minus the union of children's intervals clipped to the span."""
    kids: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for p in placed:
        if p.parent_id:
            kids[p.parent_id].append((p.start, p.end))
    out = {}
    for p in placed:
        covered, cur_start, cur_end = 0, None, None
        for s, e in sorted(kids.get(p.span.span_id, ())):
            s, e = max(s, p.start), min(e, p.end)
            if e <= s:
                continue
            if cur_end is None or s > cur_end:
                if cur_end is not None:
                    covered += cur_end - cur_start
                cur_start, cur_end = s, e
            else:
                cur_end = max(cur_end, e)
        if cur_end is not None:
            covered += cur_end - cur_start
        out[p.span.span_id] = max(0, (p.end - p.start) - covered)
    return out


def _incoming_links(spans: list[Span]) -> dict[str, list[tuple[str, str]]]:
    """For each span, the (trace_id, span_id) of spans in this trace that link to it."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s in spans:
        for link in s.links:
            if link.trace_id == s.trace_id:
                out[link.span_id].append((s.trace_id, s.span_id))
    return out
