"""Saga checks and timelines, with Hypothesis-generated sagas."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from app.analysis.sagas import check_saga, saga_timeline
from collectors.model import STATUS_ERROR, STATUS_OK, SagaInstance, SagaStepSpan

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
