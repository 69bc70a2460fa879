"""Structural diff of two traces: spans matched by service, operation and position.

A span's key is the path of (service, operation, ordinal) steps from its root, where
the ordinal counts earlier siblings with the same service and operation. Two spans in
different traces match when their keys are equal. Pure: no Flask, no SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from app.analysis.tree import build_trace_view
from collectors.model import Span

ONLY_A = "only-a"
ONLY_B = "only-b"
BOTH = "both"

Key = tuple[tuple[str, str, int], ...]


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One node of the merged tree: present in A, in B or in both."""

    key: Key
    depth: int
    service: str
    operation: str
    where: str
    a_ns: int | None
    b_ns: int | None
    a_error: bool
    b_error: bool

    @property
    def delta_ns(self) -> int | None:
        """B minus A, when the span is in both."""
        if self.a_ns is None or self.b_ns is None:
            return None
        return self.b_ns - self.a_ns

    @property
    def delta_ratio(self) -> float | None:
        """Relative change from A to B, when both are present and A is non-zero."""
        if self.delta_ns is None or not self.a_ns:
            return None
        return self.delta_ns / self.a_ns


@dataclass(frozen=True, slots=True)
class TraceDiff:
    """The merged rows and how many spans fell in each group."""

    rows: list[DiffRow]
    only_a: int
    only_b: int
    both: int


def span_keys(spans: list[Span]) -> list[tuple[Key, Span]]:
    """Each span with its structural key, in waterfall order."""
    view = build_trace_view(spans, adjust_skew=False)
    keys: dict[str, Key] = {}
    ordinals: dict[tuple[Key, str, str], int] = defaultdict(int)
    out = []
    for row in view.rows:
        parent_key: Key = keys.get(row.parent_id, ()) if row.parent_id else ()
        step = (row.span.service, row.span.name)
        n = ordinals[(parent_key, *step)]
        ordinals[(parent_key, *step)] = n + 1
        key = (*parent_key, (*step, n))
        keys[row.span.span_id] = key
        out.append((key, row.span))
    return out


def compare_traces(a: list[Span], b: list[Span]) -> TraceDiff:
    """Merge the two span trees; A's order first, B-only spans after their A siblings."""
    a_keys = span_keys(a)
    b_keys = span_keys(b)
    a_by = {k: s for k, s in a_keys}
    b_by = {k: s for k, s in b_keys}
    children: dict[Key, list[Key]] = defaultdict(list)
    seen: set[Key] = set()
    for key, _ in [*a_keys, *b_keys]:
        if key not in seen:
            seen.add(key)
            children[key[:-1]].append(key)
    rows: list[DiffRow] = []
    stack = list(reversed(children[()]))
    while stack:
        key = stack.pop()
        sa, sb = a_by.get(key), b_by.get(key)
        service, operation, _ = key[-1]
        rows.append(
            DiffRow(
                key=key,
                depth=len(key) - 1,
                service=service,
                operation=operation,
                where=BOTH if sa and sb else ONLY_A if sa else ONLY_B,
                a_ns=sa.duration_ns if sa else None,
                b_ns=sb.duration_ns if sb else None,
                a_error=bool(sa and sa.is_error),
                b_error=bool(sb and sb.is_error),
            )
        )
        stack.extend(reversed(children.get(key, ())))
    return TraceDiff(
        rows=rows,
        only_a=sum(1 for r in rows if r.where == ONLY_A),
        only_b=sum(1 for r in rows if r.where == ONLY_B),
        both=sum(1 for r in rows if r.where == BOTH),
    )
