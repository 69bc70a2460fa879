"""The waterfall's span filter: which rows a filtered view keeps, and why.

A filter names criteria (service, attributes, duration bounds, error status, the slowest
spans, the critical path); a span matches when it meets all of them. The view keeps the
matches and their ancestors, in the tree's order, so the tree still reads: an ancestor
that does not match itself is marked as context. Pure functions over a
:class:`~app.analysis.tree.TraceView`; the trace page parses the query into a
:class:`SpanFilter` and renders what :func:`filter_rows` returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from app.analysis.tree import Row, TraceView
from app.analysis.values import typed

SLOW_SHARE = 0.05
"""The "slow spans" pill keeps the 5 % of a trace's spans (at least one) with the most self
time, the time a span spent outside its children: by duration alone the slowest spans
would always be the root and its chain, which every filtered view shows anyway."""


@dataclass(frozen=True, slots=True)
class SpanFilter:
    """What a span must be to match; an empty filter keeps every row."""

    service: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    min_ns: int | None = None
    max_ns: int | None = None
    errors: bool = False
    slow: bool = False
    critical: bool = False

    @property
    def active(self) -> bool:
        """Whether the filter leaves anything out."""
        return bool(
            self.service or self.tags or self.min_ns is not None or self.max_ns is not None
        ) or self.errors or self.slow or self.critical


@dataclass(frozen=True, slots=True)
class FilteredRows:
    """The rows a filter keeps: matches and their ancestors, in tree order.

    ``matched`` holds the span ids that meet the filter; every other kept row is an
    ancestor shown as context. ``children`` counts each kept row's kept children.
    """

    rows: list[Row]
    matched: frozenset[str]
    children: dict[str, int]
    total: int
    slow_threshold_ns: int

    @property
    def match_count(self) -> int:
        """Spans that meet the filter."""
        return len(self.matched)


def slow_threshold(view: TraceView, share: float = SLOW_SHARE) -> int:
    """The least self time among the ``share`` of the spans with the most (at least one)."""
    if not view.rows:
        return 0
    durations = sorted((r.self_ns for r in view.rows), reverse=True)
    keep = max(1, math.ceil(len(durations) * share))
    return durations[keep - 1]


def span_meets(row: Row, spec: SpanFilter, threshold_ns: int) -> bool:
    """Whether one row meets every criterion of the filter."""
    s = row.span
    if spec.service and s.service != spec.service:
        return False
    if spec.errors and not s.is_error:
        return False
    if spec.critical and not row.critical:
        return False
    if spec.slow and row.self_ns < threshold_ns:
        return False
    if spec.min_ns is not None and row.duration_ns < spec.min_ns:
        return False
    if spec.max_ns is not None and row.duration_ns > spec.max_ns:
        return False
    return all(_has_attribute(row, key, value) for key, value in spec.tags.items())


def filter_rows(view: TraceView, spec: SpanFilter) -> FilteredRows:
    """The rows that meet ``spec`` with every ancestor of each, in the view's order."""
    threshold = slow_threshold(view)
    if not spec.active:
        children = {r.span_id: r.child_count for r in view.rows}
        return FilteredRows(view.rows, frozenset(r.span_id for r in view.rows), children, len(view.rows), threshold)
    parents = {r.span_id: r.parent_id for r in view.rows}
    matched = {r.span_id for r in view.rows if span_meets(r, spec, threshold)}
    keep = set(matched)
    for span_id in matched:
        parent = parents.get(span_id, "")
        while parent and parent not in keep:
            keep.add(parent)
            parent = parents.get(parent, "")
    rows = [r for r in view.rows if r.span_id in keep]
    children: dict[str, int] = {r.span_id: 0 for r in rows}
    for r in rows:
        if r.parent_id in children:
            children[r.parent_id] += 1
    return FilteredRows(rows, frozenset(matched), children, len(view.rows), threshold)


def _has_attribute(row: Row, key: str, value: str) -> bool:
    """The span's attribute (or else its resource's) ``key`` reads as ``value``."""
    for attributes in (row.span.attributes, row.span.resource.attributes):
        if key in attributes:
            return typed(key, attributes[key]).text == value
    return False
