"""Structural trace diff: matching by service, operation and position."""

from __future__ import annotations

from hypothesis import given, settings

from app.analysis.compare import BOTH, ONLY_A, ONLY_B, compare_traces
from tests.app.analysis.test_tree import MS, span, span_forests


def test_comparing_a_trace_with_itself_matches_everything_with_no_change():
    spans = [span(1, None, 0, 100), span(2, 1, 0, 10), span(3, 1, 20, 30)]
    diff = compare_traces(spans, spans)
    assert {r.where for r in diff.rows} == {BOTH}
    assert all(r.delta_ns == 0 for r in diff.rows)


def test_extra_and_missing_spans_and_duration_change():
    a = [span(1, None, 0, 100, name="root"), span(2, 1, 0, 10, name="db"), span(3, 1, 20, 30, name="cache")]
    b = [span(1, None, 0, 150, name="root"), span(2, 1, 0, 10, name="db"), span(3, 1, 20, 30, name="db")]
    diff = compare_traces(a, b)
    where = {(r.operation, r.key[-1][2]): r.where for r in diff.rows}
    assert where == {("root", 0): BOTH, ("db", 0): BOTH, ("cache", 0): ONLY_A, ("db", 1): ONLY_B}
    root = diff.rows[0]
    assert root.delta_ns == 50 * MS and root.delta_ratio == 0.5
    assert (diff.only_a, diff.only_b, diff.both) == (1, 1, 2)


@settings(max_examples=100, deadline=None)
@given(span_forests(), span_forests())
def test_every_span_of_each_trace_is_accounted_for_once(a, b):
    diff = compare_traces(a, b)
    assert diff.only_a + diff.both == len(a)
    assert diff.only_b + diff.both == len(b)
    assert len({r.key for r in diff.rows}) == len(diff.rows)
