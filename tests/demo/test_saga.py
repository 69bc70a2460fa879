"""Unit tests for the saga orchestrator: order of actions and compensations, retries, spans."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from demo_services.patterns.saga import (
    COMPENSATED,
    COMPLETED,
    FAILED,
    PENDING,
    SagaOrchestrator,
    SagaStep,
    SagaStepError,
)
from tests.demo.helpers import Spans

ATTEMPTS = 3


def _build(
    count: int,
    failing: int | None,
    compensation_failures: dict[int, int],
    calls: list[str],
    transient: bool = True,
) -> list[SagaStep]:
    remaining = dict(compensation_failures)

    def action(index: int):
        def run(ctx: dict[str, Any]) -> None:
            calls.append(f"do{index}")
            if index == failing:
                raise SagaStepError(f"step {index} failed")

        return run

    def compensation(index: int):
        def run(ctx: dict[str, Any]) -> None:
            calls.append(f"undo{index}")
            if remaining.get(index, 0) > 0:
                remaining[index] -= 1
                raise SagaStepError(f"undo {index} failed", transient=transient)

        return run

    return [SagaStep(f"s{i}", action(i), compensation(i)) for i in range(count)]


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    count=st.integers(min_value=1, max_value=6),
)
def test_saga_compensates_exactly_the_completed_steps_in_reverse_order(data: st.DataObject, count: int) -> None:
    failing = data.draw(st.one_of(st.none(), st.integers(0, count - 1)), label="failing")
    failures = data.draw(st.dictionaries(st.integers(0, count - 1), st.integers(0, ATTEMPTS + 1)), label="flaky")
    recorder = Spans()
    calls: list[str] = []
    saga = SagaOrchestrator(
        "test",
        _build(count, failing, failures, calls),
        tracer=recorder.tracer,
        retry_attempts=ATTEMPTS,
        sleep=lambda _s: None,
    )

    result = saga.run({})

    if failing is None:
        assert result.outcome == COMPLETED
        assert calls == [f"do{i}" for i in range(count)]
        return
    completed = list(range(failing))
    assert result.completed == [f"s{i}" for i in completed]
    assert [c for c in calls if c.startswith("do")] == [f"do{i}" for i in range(failing + 1)]
    undo_order = [int(c[4:]) for c in calls if c.startswith("undo")]
    # Each completed step is compensated (with retries of transient errors) exactly in
    # reverse order; one that still fails leaves the saga pending there, the older ones wait.
    expected: list[int] = []
    stuck = None
    for i in reversed(completed):
        expected += [i] * min(failures.get(i, 0) + 1, ATTEMPTS)
        if failures.get(i, 0) >= ATTEMPTS:
            stuck = f"s{i}"
            break
    assert undo_order == expected
    assert result.compensation_failures == []
    assert result.pending == stuck
    assert result.outcome == (PENDING if stuck else COMPENSATED)


def test_saga_spans_carry_design_attributes(spans: Spans) -> None:
    calls: list[str] = []
    saga = SagaOrchestrator("order", _build(3, 2, {}, calls), tracer=spans.tracer, sleep=lambda _s: None)

    result = saga.run({}, saga_id="abc")

    finished = spans.finished()
    root = next(s for s in finished if s.parent is None)
    assert root.name == "saga order"
    assert root.attributes["saga.id"] == "abc"
    assert root.attributes["saga.outcome"] == COMPENSATED == result.outcome
    steps = [s for s in finished if s.parent is not None]
    assert all(s.parent.span_id == root.context.span_id for s in steps)
    phases = [(s.attributes["saga.step"], s.attributes["saga.phase"]) for s in steps]
    assert phases == [
        ("s0", "action"),
        ("s1", "action"),
        ("s2", "action"),
        ("s1", "compensation"),
        ("s0", "compensation"),
    ]
    failed = steps[2]
    assert failed.status.is_ok is False
    assert [s.attributes["saga.step.index"] for s in steps] == [0, 1, 2, 1, 0]


def test_saga_retries_a_transient_compensation_and_records_each_retry(spans: Spans) -> None:
    calls: list[str] = []
    saga = SagaOrchestrator("order", _build(2, 1, {0: 2}, calls), tracer=spans.tracer, sleep=lambda _s: None)

    result = saga.run({})

    assert result.outcome == COMPENSATED
    assert calls.count("undo0") == 3
    compensation = next(s for s in spans.finished() if s.attributes.get("saga.phase") == "compensation")
    retries = [e for e in compensation.events if e.name == "saga.step.retry"]
    assert [e.attributes["retry.attempt"] for e in retries] == [1, 2]
    assert compensation.status.is_ok


def test_a_compensation_refused_for_good_is_not_retried_and_the_saga_fails(spans: Spans) -> None:
    calls: list[str] = []
    saga = SagaOrchestrator(
        "order", _build(3, 2, {1: 10}, calls, transient=False), tracer=spans.tracer, sleep=lambda _s: None
    )

    result = saga.run({})

    assert result.outcome == FAILED
    assert calls == ["do0", "do1", "do2", "undo1", "undo0"]  # once each: a 409 is not retried
    assert result.compensation_failures == ["s1"] and result.compensated == ["s0"]
    root = next(s for s in spans.finished() if s.parent is None)
    assert root.attributes["saga.outcome"] == FAILED


def test_a_saga_told_to_skip_compensation_ends_failed_and_says_so(spans: Spans) -> None:
    calls: list[str] = []
    skip = [True]
    saga = SagaOrchestrator("order", _build(3, 2, {}, calls), tracer=spans.tracer, skip_compensation=lambda: skip[0])

    result = saga.run({})

    assert result.outcome == FAILED and result.compensated == []
    assert calls == ["do0", "do1", "do2"]
    root = next(s for s in spans.finished() if s.parent is None)
    assert root.attributes["saga.outcome"] == FAILED
    skipped = [e for e in root.events if e.name == "saga.compensation.skipped"]
    assert len(skipped) == 1 and list(skipped[0].attributes["saga.step"]) == ["s1", "s0"]
    assert not [s for s in spans.finished() if s.attributes.get("saga.phase") == "compensation"]
    # With the switch off again, the next run compensates as usual.
    skip[0] = False
    calls.clear()
    assert saga.run({}).outcome == COMPENSATED
    assert calls == ["do0", "do1", "do2", "undo1", "undo0"]


def test_saga_lets_unexpected_errors_propagate(spans: Spans) -> None:
    def broken(ctx: dict[str, Any]) -> None:
        raise KeyError("bug")

    saga = SagaOrchestrator("order", [SagaStep("s0", broken)], tracer=spans.tracer)

    with pytest.raises(KeyError):
        saga.run({})
