"""Saga checks and timelines, with Hypothesis-generated sagas."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from app.analysis.sagas import (
    axis_ticks,
    check_saga,
    error_text,
    failure_cause,
    outcome_counts,
    saga_reason,
    saga_timeline,
)
from collectors.model import STATUS_ERROR, STATUS_OK, Resource, SagaInstance, SagaStepSpan, Span, SpanEvent

_ids = itertools.count(1)


def step(name: str, index: int, phase: str, start: int, ok: bool = True) -> SagaStepSpan:
    return SagaStepSpan(
        "s1",
        name,
        index,
        phase,
        "orders",
        start,
        start + 5,
        STATUS_OK if ok else STATUS_ERROR,
        "",
        "ab" * 16,
        f"{next(_ids):016x}",
    )


def saga(outcome: str | None) -> SagaInstance:
    return SagaInstance("s1", "order", "ab" * 16, "", "orders", 0, 1000, outcome)


def run(names: list[str], fail_at: int | None) -> list[SagaStepSpan]:
    """What a correct orchestrator does: actions in order; on failure, compensate in reverse."""
    out, t = [], 0
    for i, name in enumerate(names):
        failed = fail_at == i
        out.append(step(name, i, "action", t, ok=not failed))
        t += 10
        if failed:
            for j in range(i - 1, -1, -1):
                out.append(step(names[j], j, "compensation", t))
                t += 10
            break
    return out


def test_completed_saga_passes():
    assert check_saga(saga("completed"), run(["a", "b", "c"], None)).ok


def test_compensated_saga_passes_and_names_the_failed_step():
    check = check_saga(saga("compensated"), run(["a", "b", "c", "d"], 2))
    assert check.ok and check.failed_step.step == "c"
    assert [c.step for c in check.compensations] == ["b", "a"]


def test_missing_compensation_is_reported_with_its_step():
    steps = [s for s in run(["a", "b", "c"], 2) if not (s.phase == "compensation" and s.step == "a")]
    check = check_saga(saga("compensated"), steps)
    assert [v.rule for v in check.violations] == ["missing"]
    assert check.violations[0].steps[0].step == "a"


def test_compensations_in_the_wrong_order_are_reported():
    steps = run(["a", "b", "c"], 2)
    comp_b, comp_a = steps[3], steps[4]
    swapped = steps[:3] + [step("a", 0, "compensation", comp_b.start_ns), step("b", 1, "compensation", comp_a.start_ns)]
    check = check_saga(saga("compensated"), swapped)
    assert [v.rule for v in check.violations] == ["order"]


def test_a_compensation_that_ran_twice_is_reported():
    steps = run(["a", "b", "c"], 2)
    steps.append(step("a", 0, "compensation", 999))
    assert "twice" in [v.rule for v in check_saga(saga("compensated"), steps).violations]


def test_compensating_a_step_that_never_completed_is_reported():
    steps = run(["a", "b", "c"], 1) + [step("b", 1, "compensation", 500)]
    assert "not-completed" in [v.rule for v in check_saga(saga("compensated"), steps).violations]


def test_running_saga_is_not_blamed_for_compensations_still_to_come():
    steps = run(["a", "b", "c"], 2)[:4]
    assert check_saga(saga(None), steps).ok


def test_timeline_has_one_lane_per_step_and_marks_the_failure():
    steps = run(["reserve", "charge", "ship"], 2)
    tl = saga_timeline(saga("compensated"), steps)
    assert [lane.step for lane in tl.lanes] == ["reserve", "charge", "ship"]
    assert [b.step.phase for b in tl.lanes[0].bars] == ["action", "compensation"]
    assert tl.failure_left is not None and 0 <= tl.failure_left <= 100


names = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=8, unique=True)


@given(names, st.data())
def test_a_correct_orchestrator_always_passes(step_names, data):
    fail_at = data.draw(st.one_of(st.none(), st.integers(0, len(step_names) - 1)))
    outcome = "completed" if fail_at is None else "compensated"
    check = check_saga(saga(outcome), run(step_names, fail_at))
    assert check.ok, check.violations
    if fail_at is not None:
        assert [c.step for c in check.compensations] == list(reversed(step_names[:fail_at]))


@given(names, st.data())
def test_any_tampering_with_the_compensations_is_caught(step_names, data):
    fail_at = data.draw(st.integers(1, len(step_names)) if len(step_names) > 1 else st.just(1))
    if fail_at >= len(step_names):
        fail_at = len(step_names) - 1
    steps = run(step_names, fail_at)
    comps = [s for s in steps if s.phase == "compensation"]
    if not comps:
        return
    actions = [s for s in steps if s.phase == "action"]
    how = data.draw(st.sampled_from(["drop", "duplicate", "swap"] if len(comps) > 1 else ["drop", "duplicate"]))
    if how == "drop":
        victim = data.draw(st.sampled_from(comps))
        comps = [c for c in comps if c is not victim]
    elif how == "duplicate":
        victim = data.draw(st.sampled_from(comps))
        comps = comps + [step(victim.step, victim.step_index, "compensation", 10_000)]
    else:
        i = data.draw(st.integers(0, len(comps) - 2))
        a, b = comps[i], comps[i + 1]
        comps[i] = step(b.step, b.step_index, "compensation", a.start_ns)
        comps[i + 1] = step(a.step, a.step_index, "compensation", b.start_ns)
    assert not check_saga(saga("compensated"), actions + comps).ok


# -- time axis, steps never run, failure cause and reason -------------------------------------


@given(st.integers(min_value=1, max_value=10**13))
def test_axis_ticks_start_at_zero_and_step_evenly_by_a_round_amount_within_the_length(length):
    ticks = axis_ticks(length)
    assert ticks[0].offset_ns == 0 and ticks[0].left == 0.0
    steps = {b.offset_ns - a.offset_ns for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1
    [size] = steps
    assert str(size).rstrip("0") in ("1", "2", "5")
    assert 2 <= len(ticks) <= 11 and ticks[-1].offset_ns <= length < ticks[-1].offset_ns + size


def test_axis_of_a_zero_length_saga_is_one_tick():
    assert [(t.left, t.offset_ns) for t in axis_ticks(0)] == [(0.0, 0)]


def test_known_steps_without_spans_become_lanes_that_never_ran_in_index_order():
    steps = [step("create", 0, "action", 0), step("pay", 1, "action", 10, ok=False)]
    known = [(0, "create", None), (1, "pay", None), (3, "notify", "retriable"), (2, "ship", "pivot")]
    timeline = saga_timeline(saga("compensated"), steps, known)
    assert [(lane.step, lane.ran, lane.kind) for lane in timeline.lanes] == [
        ("create", True, None),
        ("pay", True, None),
        ("ship", False, "pivot"),
        ("notify", False, "retriable"),
    ]
    assert [lane.step for lane in timeline.never_ran] == ["ship", "notify"]
    assert timeline.never_ran[0].bars == []


def test_outcome_counts_list_every_outcome_and_running_with_zeros():
    assert outcome_counts({"compensated": 2, "running": 1}) == [
        ("completed", 0),
        ("compensated", 2),
        ("failed", 0),
        ("running", 1),
    ]


def test_saga_reason_names_the_failed_action_and_a_failed_compensation():
    failed = step("pay", 1, "action", 10, ok=False)
    undo = step("create", 0, "compensation", 20, ok=False)
    assert saga_reason(saga("compensated"), [step("create", 0, "action", 0), failed]) == "step pay failed"
    assert saga_reason(saga("failed"), [failed, undo]) == "step pay failed; compensating create failed"
    assert saga_reason(saga("compensated"), []) == "the saga ended compensated with no failed step span"
    assert saga_reason(saga("completed"), [step("create", 0, "action", 0)]) == ""


def _span(span_id: str, parent: str, *, error: bool = False, message: str = "", events=()) -> Span:
    return Span(
        "ab" * 16,
        span_id,
        parent,
        f"op {span_id}",
        1,
        int(span_id, 16),
        int(span_id, 16) + 1,
        Resource("svc"),
        events=tuple(events),
        status_code=STATUS_ERROR if error else STATUS_OK,
        status_message=message,
    )


def test_failure_cause_is_the_deepest_error_under_the_failed_step():
    failed = step("pay", 1, "action", 10, ok=False)
    exc = SpanEvent(0, "exception", {"exception.type": "Declined", "exception.message": "no funds"})
    spans = [
        _span(failed.span_id, "", error=True, message="payment failed"),
        _span("00000000000000a1", failed.span_id, error=True, message="402"),
        _span("00000000000000a2", "00000000000000a1", error=True, events=[exc]),
        _span("00000000000000a3", "00000000000000a2"),
        _span("00000000000000b1", "", error=True, message="unrelated, deeper elsewhere"),
    ]
    cause = failure_cause([step("create", 0, "action", 0), failed], spans)
    assert (cause.step, cause.reason, cause.span_id) == ("pay", "Declined: no funds", "00000000000000a2")
    own = failure_cause([failed], [])
    assert (own.reason, own.span_id, own.span_name) == ("step pay failed", failed.span_id, "action pay")
    assert failure_cause([step("create", 0, "action", 0)], spans) is None


def test_error_text_prefers_the_status_message_then_the_exception():
    assert error_text(_span("01", "", error=True, message="boom")) == "boom"
    only_type = SpanEvent(0, "exception", {"exception.type": "Timeout"})
    assert error_text(_span("01", "", error=True, events=[only_type])) == "Timeout"
    assert error_text(_span("01", "", error=True)) == "status ERROR, with no message"


def kinded(name: str, index: int, phase: str, start: int, kind: str, ok: bool = True) -> SagaStepSpan:
    return SagaStepSpan(
        "s1",
        name,
        index,
        phase,
        "orders",
        start,
        start + 5,
        STATUS_OK if ok else STATUS_ERROR,
        "",
        "ab" * 16,
        f"{next(_ids):016x}",
        kind,
    )


def pivoted(confirm_ok: bool) -> list[SagaStepSpan]:
    """reserve (compensatable), capture (pivot), then confirm (retriable) failing once."""
    return [
        kinded("reserve", 0, "action", 0, "compensatable"),
        kinded("capture", 1, "action", 10, "pivot"),
        kinded("confirm", 2, "action", 20, "retriable", ok=confirm_ok),
        *([] if confirm_ok else [kinded("confirm", 2, "action", 30, "retriable")]),
    ]


def test_a_retriable_step_that_failed_and_was_retried_forward_is_no_failure_point():
    steps = pivoted(confirm_ok=False)

    check = check_saga(saga("completed"), steps)

    assert check.ok, check.violations
    assert check.failed_step is None
    assert saga_timeline(saga("completed"), steps).failure_left is None


def test_the_pivot_and_retriable_steps_are_never_expected_to_be_compensated():
    steps = [
        kinded("reserve", 0, "action", 0, "compensatable"),
        kinded("ship", 1, "action", 10, "compensatable"),
        kinded("capture", 2, "action", 20, "pivot", ok=False),
        kinded("ship", 1, "compensation", 30, "compensatable"),
        kinded("reserve", 0, "compensation", 40, "compensatable"),
    ]
    check = check_saga(saga("compensated"), steps)
    assert check.ok, check.violations
    assert [s.step for s in check.completed] == ["reserve", "ship"]
    compensated_pivot = [*pivoted(True), kinded("capture", 1, "compensation", 40, "pivot")]
    rules = [v.rule for v in check_saga(saga("failed"), compensated_pivot).violations]
    assert "not-completed" in rules


def test_a_compensation_retried_after_a_transient_error_counts_once():
    steps = [
        kinded("reserve", 0, "action", 0, "compensatable"),
        kinded("pay", 1, "action", 10, "compensatable", ok=False),
        kinded("reserve", 0, "compensation", 20, "compensatable", ok=False),
        kinded("reserve", 0, "compensation", 30, "compensatable"),
    ]
    assert check_saga(saga("compensated"), steps).ok
    twice = [*steps, kinded("reserve", 0, "compensation", 40, "compensatable")]
    assert "twice" in [v.rule for v in check_saga(saga("compensated"), twice).violations]


def test_lanes_carry_their_steps_kind():
    lanes = saga_timeline(saga("completed"), pivoted(True)).lanes
    assert [(lane.step, lane.kind) for lane in lanes] == [
        ("reserve", "compensatable"),
        ("capture", "pivot"),
        ("confirm", "retriable"),
    ]
