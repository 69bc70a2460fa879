"""Trace search sort orders in the store: slowest, most spans, most errors."""

from __future__ import annotations

import time

import pytest

from collectors.model import STATUS_ERROR, Resource, Span
from collectors.store import TraceQuery

NOW = time.time_ns()
MS = 1_000_000


def _trace(n: int, *, age_ms: int, duration_ms: int, spans: int, errors: int) -> list[Span]:
    trace_id = f"{n:032x}"
    res = Resource("svc", {"service.name": "svc"})
    start = NOW - age_ms * MS
    out = [Span(trace_id, f"{1:016x}", "", "root", 2, start, start + duration_ms * MS, res)]
    for i in range(1, spans):
        out.append(
            Span(
                trace_id,
                f"{i + 1:016x}",
                f"{1:016x}",
                "child",
                1,
                start,
                start + MS,
                res,
                status_code=STATUS_ERROR if i <= errors else 0,
            )
        )
    return out


@pytest.fixture
def three(store):
    store.write_spans(_trace(1, age_ms=1000, duration_ms=10, spans=5, errors=0))
    store.write_spans(_trace(2, age_ms=2000, duration_ms=500, spans=2, errors=1))
    store.write_spans(_trace(3, age_ms=3000, duration_ms=50, spans=9, errors=4))
    return store


def _ids(store, **kw) -> list[int]:
    q = TraceQuery(start_ns=NOW - 60_000 * MS, end_ns=NOW, **kw)
    return [int(t.trace_id, 16) for t in store.find_traces(q).traces]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("recent", [1, 2, 3]),
        ("slowest", [2, 3, 1]),
        ("spans", [3, 1, 2]),
        ("errors", [3, 2, 1]),
    ],
)
def test_sort_orders(three, sort, expected):
    assert _ids(three, sort=sort) == expected


def test_sorted_search_applies_filters_and_limit_and_says_it_was_truncated(three):
    assert _ids(three, sort="slowest", status="error") == [2, 3]
    result = three.find_traces(TraceQuery(start_ns=NOW - 60_000 * MS, end_ns=NOW, sort="spans", limit=1))
    assert [int(t.trace_id, 16) for t in result.traces] == [3] and result.truncated
    assert _ids(three, sort="errors", operation="child", min_duration_ns=0) == [3, 2, 1]


def test_unknown_sort_is_refused(three):
    with pytest.raises(ValueError, match="sort must be one of"):
        _ids(three, sort="sideways")
