"""Unit tests of the saga's pivot, its retriable steps and resuming from the saga log
(a real SQLite file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from demo_services.patterns.saga import (
    COMPENSATED,
    COMPLETED,
    FAILED,
    KIND_PIVOT,
    KIND_RETRIABLE,
    PENDING,
    SagaOrchestrator,
    SagaStep,
    SagaStepError,
    check_steps,
)
from demo_services.patterns.retry import current_attempt
from demo_services.patterns.saga_log import SagaLog
from demo_services.patterns.saga_recovery import SagaRecovery
from demo_services.service import create_engine
from tests.demo.helpers import Spans


class Crash(BaseException):
    """The process dying between two steps (nothing after it runs)."""


class Script:
    """Steps a0..a2 (compensatable), pivot p, retriable r0 and r1, whose failures are scripted."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failures: dict[str, list[SagaStepError]] = {}
        self.attempts: dict[str, list[int]] = {}

    def act(self, name: str):
        def run(ctx: dict[str, Any]) -> None:
            self.calls.append(name)
            self.attempts.setdefault(name, []).append(current_attempt())
            ctx[name] = "done"
            queued = self.failures.get(name)
            if queued:
                raise queued.pop(0)

        return run

    def steps(self) -> list[SagaStep]:
        return [
            *(SagaStep(f"a{i}", self.act(f"a{i}"), self.act(f"undo a{i}")) for i in range(3)),
            SagaStep("p", self.act("p"), kind=KIND_PIVOT),
            SagaStep("r0", self.act("r0"), kind=KIND_RETRIABLE),
            SagaStep("r1", self.act("r1"), kind=KIND_RETRIABLE),
        ]


def transient(n: int) -> list[SagaStepError]:
    return [SagaStepError("503 from upstream", transient=True) for _ in range(n)]


def orchestrator(script: Script, spans: Spans, **kwargs: Any) -> SagaOrchestrator:
    return SagaOrchestrator("order", script.steps(), tracer=spans.tracer, sleep=lambda _s: None, **kwargs)


@pytest.fixture
def saga_log(tmp_path: Path):
    engine = create_engine(tmp_path / "orders.db")
    metadata = sa.MetaData()
    log = SagaLog(engine, metadata)
    metadata.create_all(engine)
    yield log
    engine.dispose()


def test_step_spans_name_their_kind(spans: Spans) -> None:
    script = Script()

    assert orchestrator(script, spans).run({}).outcome == COMPLETED

    kinds = [(s.attributes["saga.step"], s.attributes["saga.step.kind"]) for s in spans.finished() if s.parent]
    assert kinds == [
        ("a0", "compensatable"),
        ("a1", "compensatable"),
        ("a2", "compensatable"),
        ("p", "pivot"),
        ("r0", "retriable"),
        ("r1", "retriable"),
    ]


@pytest.mark.parametrize(
    "steps",
    [
        [SagaStep("p", print, kind=KIND_PIVOT), SagaStep("a", print)],
        [SagaStep("p", print, kind=KIND_PIVOT), SagaStep("q", print, kind=KIND_PIVOT)],
        [SagaStep("r", print, kind=KIND_RETRIABLE)],
        [SagaStep("p", print, print, kind=KIND_PIVOT)],
        [SagaStep("x", print, kind="sometimes")],
    ],
)
def test_steps_out_of_the_patterns_order_are_refused(steps: list[SagaStep]) -> None:
    with pytest.raises(ValueError):
        check_steps(steps)


def test_a_transient_failure_after_the_pivot_is_retried_forward_never_compensated(spans: Spans) -> None:
    script = Script()
    script.failures["r0"] = transient(2)

    result = orchestrator(script, spans).run({})

    assert result.outcome == COMPLETED
    assert script.calls == ["a0", "a1", "a2", "p", "r0", "r0", "r0", "r1"]
    assert script.attempts["r0"] == [1, 2, 3]
    r0 = next(s for s in spans.finished() if s.attributes.get("saga.step") == "r0")
    assert [e.attributes["retry.attempt"] for e in r0.events if e.name == "saga.step.retry"] == [1, 2]


def test_a_retriable_step_still_failing_leaves_the_saga_pending_not_compensated(spans: Spans) -> None:
    script = Script()
    script.failures["r1"] = transient(10)

    result = orchestrator(script, spans, forward_attempts=3).run({})

    assert result.outcome == PENDING and result.pending == "r1"
    assert not [c for c in script.calls if c.startswith("undo")]
    root = next(s for s in spans.finished() if s.parent is None)
    assert "saga.outcome" not in root.attributes
    assert [e.attributes["saga.step"] for e in root.events if e.name == "saga.pending"] == ["r1"]


def test_a_business_failure_after_the_pivot_is_not_retried_and_fails_the_saga(spans: Spans) -> None:
    script = Script()
    script.failures["r0"] = [SagaStepError("409: reservation is released")]

    result = orchestrator(script, spans).run({})

    assert result.outcome == FAILED and result.failed_step == "r0"
    assert script.calls == ["a0", "a1", "a2", "p", "r0"]
    root = next(s for s in spans.finished() if s.parent is None)
    assert root.attributes["saga.outcome"] == FAILED


def test_a_failed_pivot_compensates_what_came_before(spans: Spans) -> None:
    script = Script()
    script.failures["p"] = [SagaStepError("402 declined")]

    result = orchestrator(script, spans).run({})

    assert result.outcome == COMPENSATED
    assert script.calls == ["a0", "a1", "a2", "p", "undo a2", "undo a1", "undo a0"]


def test_resume_before_the_pivot_compensates_the_completed_steps(spans: Spans, saga_log: SagaLog) -> None:
    script = Script()

    def crash_before(name: str) -> None:
        if name == "a2":
            raise Crash

    with pytest.raises(Crash):
        orchestrator(script, spans, log=saga_log, before_step=crash_before).run({"_card": "4242"}, saga_id="s1")
    (record,) = saga_log.unfinished()
    assert record.status == "running" and record.completed("action") == ["a0", "a1"]
    assert "_card" not in record.context

    after = Script()
    results = SagaRecovery(orchestrator(after, spans, log=saga_log), saga_log).resume_unfinished()

    assert [(r.saga_id, r.outcome, r.resumed) for r in results] == [("s1", COMPENSATED, True)]
    assert after.calls == ["undo a1", "undo a0"]
    assert saga_log.unfinished() == [] and saga_log.get("s1").status == COMPENSATED
    first_root = next(s for s in spans.finished() if s.name == "saga order" and not s.attributes.get("saga.resumed"))
    resumed = [s for s in spans.finished() if s.attributes.get("saga.resumed")]
    assert len(resumed) == 1 and resumed[0].context.trace_id == first_root.context.trace_id
    interrupted = next(s for s in spans.finished() if s.attributes.get("saga.step") == "a2")
    assert not interrupted.status.is_ok and "interrupted" in interrupted.status.description


def test_resume_after_the_pivot_carries_the_retriable_steps_forward(spans: Spans, saga_log: SagaLog) -> None:
    script = Script()

    def crash_before(name: str) -> None:
        if name == "r1":
            raise Crash

    with pytest.raises(Crash):
        orchestrator(script, spans, log=saga_log, before_step=crash_before).run({}, saga_id="s2")
    assert saga_log.get("s2").status == "forward"

    after = Script()
    after.failures["r1"] = transient(1)
    (result,) = SagaRecovery(orchestrator(after, spans, log=saga_log), saga_log).resume_unfinished()

    assert result.outcome == COMPLETED
    assert after.calls == ["r1", "r1"]
    assert saga_log.get("s2").status == COMPLETED


def test_a_pivot_in_flight_at_the_crash_is_run_again_not_compensated(spans: Spans, saga_log: SagaLog) -> None:
    script = Script()

    def crash_in(ctx: dict[str, Any]) -> None:
        raise Crash

    steps = script.steps()
    steps[3] = SagaStep("p", crash_in, kind=KIND_PIVOT)
    with pytest.raises(Crash):
        SagaOrchestrator("order", steps, tracer=spans.tracer, log=saga_log).run({}, saga_id="s3")

    after = Script()
    (result,) = SagaRecovery(orchestrator(after, spans, log=saga_log), saga_log).resume_unfinished()

    assert result.outcome == COMPLETED
    assert after.calls == ["p", "r0", "r1"]


def test_a_pending_saga_is_tried_again_after_a_wait(spans: Spans, saga_log: SagaLog) -> None:
    script = Script()
    script.failures["r0"] = transient(10)
    saga = orchestrator(script, spans, log=saga_log, forward_attempts=2)

    assert saga.run({}, saga_id="s4").outcome == PENDING
    assert saga_log.get("s4").status == "forward"
    recovery = SagaRecovery(saga, saga_log)
    first = recovery.resume_unfinished()
    assert [r.outcome for r in first] == [PENDING]
    assert recovery.resume_unfinished() == []  # waiting before the next try


def test_a_saga_its_run_still_holds_or_finished_meanwhile_is_not_resumed(spans: Spans, saga_log: SagaLog) -> None:
    script = Script()
    script.failures["r0"] = transient(10)
    saga = orchestrator(script, spans, log=saga_log, forward_attempts=1)
    assert saga.run({}, saga_id="s5").outcome == PENDING
    recovery = SagaRecovery(saga, saga_log)

    assert saga.claim("s5")  # a request is running it
    assert recovery.resume_unfinished() == []
    saga_log.set_status("s5", COMPLETED)  # ... and finishes it
    saga.release("s5")
    assert recovery.resume_unfinished() == []
    assert script.calls.count("r0") == 1
