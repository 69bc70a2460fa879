"""Breaker state timelines and summaries from transition events, without HTML."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.analysis.breakers import MIN_SHOWN_WIDTH, edge_badges, state_timeline, summarize_breakers
from collectors.model import BreakerCalls, BreakerTransition

S = 1_000_000_000


def tr(t: int, a: str, b: str, name: str = "orders->payment", caller: str = "orders") -> BreakerTransition:
    return BreakerTransition(name, caller, t, a, b, 5, "ab" * 16, f"{t:016x}")


def test_timeline_splits_the_window_at_each_transition():
    segs = state_timeline(
        [tr(30 * S, "closed", "open"), tr(60 * S, "open", "half_open"), tr(61 * S, "half_open", "closed")],
        0,
        100 * S,
        "closed",
    )
    assert [(s.state, s.start_ns // S, s.end_ns // S) for s in segs] == [
        ("closed", 0, 30),
        ("open", 30, 60),
        ("half_open", 60, 61),
        ("closed", 61, 100),
    ]
    assert abs(sum(s.width for s in segs) - 100) < 1e-9
    assert segs[1].left == 30


def test_timeline_ignores_transitions_outside_the_window_and_repeats():
    segs = state_timeline(
        [tr(5 * S, "closed", "open"), tr(50 * S, "open", "open"), tr(500 * S, "open", "closed")],
        10 * S,
        100 * S,
        "open",
    )
    assert [(s.state, s.start_ns, s.end_ns) for s in segs] == [("open", 10 * S, 100 * S)]


STATES = st.sampled_from(["closed", "open", "half_open"])


@given(st.lists(st.tuples(st.integers(0, 1000), STATES), max_size=30), STATES)
def test_timeline_covers_the_window_with_alternating_states(changes, initial):
    ts = [tr(t * S, "x", s) for t, s in changes]
    segs = state_timeline(ts, 0, 1000 * S, initial)
    assert segs[0].start_ns == 0 and segs[-1].end_ns == 1000 * S
    for a, b in zip(segs, segs[1:]):
        assert a.end_ns == b.start_ns and a.state != b.state
    last = max(ts, key=lambda t: t.time_ns, default=None)
    # The state at the end is the target of the last transition (when there is one).
    if last is not None and all(
        t.time_ns < last.time_ns or t is last or t.to_state == last.to_state for t in ts if t.time_ns == last.time_ns
    ):
        assert segs[-1].state == last.to_state


def test_summary_current_state_time_in_state_and_counts():
    calls = [BreakerCalls("orders->payment", "orders", "payment", 40, 6, 9, 70 * S, "open")]
    ts = [tr(30 * S, "closed", "open")]
    [view] = summarize_breakers(calls, ts, {}, 0, 100 * S)
    assert (view.state, view.since_ns, view.time_in_state_ns) == ("open", 30 * S, 70 * S)
    assert (view.call_count, view.failure_count, view.rejected_count) == (40, 6, 9)
    assert view.callee == "payment"
    assert [s.state for s in view.segments] == ["closed", "open"]
    assert view.marks[0].left == 30


def test_summary_starts_from_the_state_before_the_window():
    before = {"orders->payment": tr(-5 * S, "closed", "open")}
    calls = [BreakerCalls("orders->payment", "orders", "payment", 2, 0, 2, 0, "")]
    [view] = summarize_breakers(calls, [], before, 0, 100 * S)
    assert view.state == "open" and [s.state for s in view.segments] == ["open"]


def test_summary_without_transitions_uses_the_state_recorded_on_calls():
    calls = [BreakerCalls("a->b", "a", "b", 3, 0, 0, 50 * S, "half_open")]
    [view] = summarize_breakers(calls, [], {}, 0, 100 * S)
    assert view.state == "half_open" and view.time_in_state_ns is None


def test_edge_badges_take_the_worst_state():
    calls = [
        BreakerCalls("x", "orders", "payment", 1, 0, 0, 1, "half_open"),
        BreakerCalls("y", "orders", "payment", 1, 0, 0, 1, "open"),
        BreakerCalls("z", "orders", "users", 1, 0, 0, 1, "closed"),
    ]
    assert edge_badges(summarize_breakers(calls, [], {}, 0, 10)) == {("orders", "payment"): "open"}


def test_a_state_the_calls_recorded_began_at_its_first_call_inside_the_window():
    """No transition explains half-open (its event was never sent): the state began at the
    first call that recorded it, after the last transition, not 'before the window'."""
    calls = [
        BreakerCalls("a->b", "a", "b", 3, 0, 0, 80 * S, "half_open", state_since_ns=60 * S),
    ]
    [view] = summarize_breakers(calls, [tr(40 * S, "closed", "open", "a->b", "a")], {}, 0, 100 * S)
    assert (view.state, view.since_ns, view.time_in_state_ns) == ("half_open", 60 * S, 40 * S)
    calls = [BreakerCalls("a->b", "a", "b", 3, 0, 0, 80 * S, "closed", state_since_ns=20 * S)]
    [view] = summarize_breakers(calls, [], {}, 0, 100 * S)
    assert (view.state, view.time_in_state_ns) == ("closed", 80 * S), "closed since its first call"


def test_a_short_open_period_is_drawn_at_least_the_minimum_width():
    window = 15 * 60 * S
    ts = [
        tr(100 * S, "closed", "open"),
        tr(101 * S, "open", "half_open"),
        tr(101 * S + S // 2, "half_open", "closed"),
    ]
    [view] = summarize_breakers([], ts, {}, 0, window)
    shown = {s.state: s for s in view.segments}
    assert shown["open"].width < 0.2 and shown["open"].shown_width == MIN_SHOWN_WIDTH
    assert shown["half_open"].shown_width == MIN_SHOWN_WIDTH
    closed = [s for s in view.segments if s.state == "closed"]
    assert all(s.shown_width == s.width for s in closed if s.width >= MIN_SHOWN_WIDTH)


def test_the_settings_the_spans_recorded_reach_the_view():
    calls = [BreakerCalls("a->b", "a", "b", 3, 0, 0, 8, "closed", failure_threshold=5, reset_timeout_ms=10_000)]
    [view] = summarize_breakers(calls, [], {}, 0, 100 * S)
    assert (view.failure_threshold, view.reset_timeout_ms) == (5, 10_000)
