"""Structural trace diff: matching by service, operation and position; sizes of change."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from app.analysis.compare import (
    BOTH,
    ONLY_A,
    ONLY_B,
    change_level,
    compare_traces,
    signed_ms,
    signed_percent,
)
from tests.app.analysis.test_tree import MS, span, span_forests


def test_comparing_a_trace_with_itself_matches_everything_with_no_change():
    spans = [span(1, None, 0, 100), span(2, 1, 0, 10), span(3, 1, 20, 30)]
    diff = compare_traces(spans, spans)
    assert {r.where for r in diff.rows} == {BOTH}
    assert all(r.delta_ns == 0 and r.level == 0 for r in diff.rows)
    assert diff.biggest == []


def test_extra_and_missing_spans_and_duration_change():
    a = [span(1, None, 0, 100, name="root"), span(2, 1, 0, 10, name="db"), span(3, 1, 20, 30, name="cache")]
    b = [span(1, None, 0, 150, name="root"), span(2, 1, 0, 10, name="db"), span(3, 1, 20, 30, name="db")]
    diff = compare_traces(a, b)
    where = {(r.operation, r.ordinal): r.where for r in diff.rows}
    assert where == {("root", 0): BOTH, ("db", 0): BOTH, ("cache", 0): ONLY_A, ("db", 1): ONLY_B}
    root = diff.rows[0]
    assert root.delta_ns == 50 * MS and root.delta_ratio == 0.5
    assert (root.ms_text, root.percent_text, root.level, root.level_text) == ("+50.0 ms", "+50 %", 2, "slower")
    assert (diff.only_a, diff.only_b, diff.both) == (1, 1, 2)
    assert [r.parent_index for r in diff.rows] == [None, 0, 0, 0]


def test_the_merged_tree_keeps_a_order_and_slots_b_only_spans_in_by_start():
    a = [span(1, None, 0, 100, name="root"), span(2, 1, 10, 20, name="x"), span(3, 1, 30, 40, name="y")]
    b = [
        span(1, None, 500, 600, name="root"),
        span(4, 1, 520, 525, name="new"),
        span(3, 1, 530, 540, name="y"),
        span(5, 1, 590, 595, name="late"),
    ]
    diff = compare_traces(a, b)
    assert [(r.operation, r.where, r.depth) for r in diff.rows] == [
        ("root", BOTH, 0),
        ("x", ONLY_A, 1),
        ("new", ONLY_B, 1),
        ("y", BOTH, 1),
        ("late", ONLY_B, 1),
    ]
    assert diff.rows[0].has_children and not diff.rows[1].has_children
    assert (diff.rows[1].a_span_id, diff.rows[1].b_span_id) == (f"{2:016x}", "")
    assert (diff.rows[2].a_span_id, diff.rows[2].b_span_id) == ("", f"{4:016x}")


def test_biggest_changes_come_first_by_absolute_ms_with_added_and_missing_spans():
    a = [
        span(1, None, 0, 1000, name="root"),
        span(2, 1, 0, 100, name="db"),
        span(3, 1, 100, 110, name="cache"),
        span(4, 1, 200, 500, name="render"),
        span(5, 1, 600, 640, name="gone"),
    ]
    b = [
        span(1, None, 0, 1200, name="root"),
        span(2, 1, 0, 92, name="db"),
        span(3, 1, 100, 170, name="cache"),
        span(4, 1, 200, 500, name="render"),
        span(6, 1, 700, 725, name="added"),
    ]
    diff = compare_traces(a, b)
    assert [(r.operation, r.ms_text) for r in diff.biggest] == [
        ("root", "+200 ms"),
        ("cache", "+60.0 ms"),
        ("gone", "−40.0 ms"),
        ("added", "+25.0 ms"),
        ("db", "−8.00 ms"),
    ]
    cache = diff.biggest[1]
    assert (cache.percent_text, cache.level, cache.level_text) == ("+600 %", 3, "much slower")
    db = diff.biggest[4]
    assert (db.percent_text, db.level, db.level_text) == ("−8 %", -1, "slightly faster")
    assert diff.biggest[2].level_text == "missing in B" and diff.biggest[2].percent_text == ""
    assert diff.biggest[3].level_text == "added in B"
    assert "render" not in [r.operation for r in diff.biggest], "an unchanged span is not a change"
    assert (diff.a_duration_ns, diff.b_duration_ns, diff.duration_text) == (1000 * MS, 1200 * MS, "+200 ms (+20 %)")


def test_bars_place_each_side_on_the_longer_trace_scale():
    a = [span(1, None, 0, 100, name="root"), span(2, 1, 50, 100, name="db")]
    b = [span(1, None, 0, 200, name="root"), span(2, 1, 100, 200, name="db")]
    rows = compare_traces(a, b).rows
    assert (rows[1].a_bar, rows[1].b_bar) == ((25.0, 25.0), (50.0, 50.0))


@pytest.mark.parametrize(
    ("delta_ms", "ratio", "level"),
    [
        (0, 0.0, 0),
        (0.05, 5.0, 0),  # under 0.1 ms: noise, whatever the ratio
        (0.5, 2.0, 1),  # doubled, but by half a millisecond
        (8, 3.0, 2),  # quadrupled, by under 10 ms
        (1, 0.04, 0),
        (1, 0.05, 1),
        (5, 0.25, 2),
        (-5, -0.3, -2),
        (50, 1.0, 3),
        (-50, -0.9, -2),
        (3, None, 2),  # from zero, by 3 ms
        (30, None, 3),
        (200, 0.1, 1),  # long, but 10 % longer
    ],
)
def test_change_level_is_a_diverging_scale(delta_ms, ratio, level):
    assert change_level(int(delta_ms * MS), ratio) == level


def test_change_texts_carry_their_sign():
    assert [signed_ms(v) for v in (0, 1_234_567, -12_340_000, 505_000_000, -1_500_000_000)] == [
        "±0 ms",
        "+1.23 ms",
        "−12.3 ms",
        "+505 ms",
        "−1,500 ms",
    ]
    assert [signed_percent(v) for v in (5.05, -0.08, 0.001)] == ["+505 %", "−8 %", "±0 %"]


@settings(max_examples=100, deadline=None)
@given(span_forests(), span_forests())
def test_every_span_of_each_trace_is_accounted_for_once(a, b):
    diff = compare_traces(a, b)
    assert diff.only_a + diff.both == len(a)
    assert diff.only_b + diff.both == len(b)
    assert len({r.key for r in diff.rows}) == len(diff.rows)
    assert {r.a_span_id for r in diff.rows if r.a_span_id} == {s.span_id for s in a}
    for r in diff.rows:
        if r.parent_index is not None:
            assert r.parent_index < r.index and diff.rows[r.parent_index].depth == r.depth - 1
