"""Orchestrated saga: run steps in order, compensate completed ones in reverse on failure.

No well-kept Python library implements an in-process saga orchestrator with tracing, so
this one is written by hand; tenacity retries failed compensations with backoff. Spans
follow DESIGN.md: a root span per saga instance (``saga.name``, ``saga.id``, and
``saga.outcome`` at its end) and one child span per step and phase (``saga.step``,
``saga.step.index``, ``saga.phase``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tenacity
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, Tracer

SAGA_NAME = "saga.name"
SAGA_ID = "saga.id"
SAGA_OUTCOME = "saga.outcome"
SAGA_STEP = "saga.step"
SAGA_STEP_INDEX = "saga.step.index"
SAGA_PHASE = "saga.phase"
PHASE_ACTION = "action"
PHASE_COMPENSATION = "compensation"
COMPLETED = "completed"
COMPENSATED = "compensated"
FAILED = "failed"
COMPENSATION_SKIPPED = "saga.compensation.skipped"

StepFunc = Callable[[dict[str, Any]], None]


class SagaStepError(Exception):
    """A step's action or compensation failed in a way the saga handles."""


@dataclass(frozen=True)
class SagaStep:
    """One step: an action and, optionally, the compensation that undoes it."""

    name: str
    action: StepFunc
    compensation: StepFunc | None = None


@dataclass
class SagaResult:
    """What happened: the outcome, the steps completed, and what was compensated."""

    saga_id: str
    outcome: str
    completed: list[str] = field(default_factory=list)
    failed_step: str | None = None
    error: BaseException | None = None
    compensated: list[str] = field(default_factory=list)
    compensation_failures: list[str] = field(default_factory=list)


class SagaOrchestrator:
    """Run a fixed list of steps as one saga instance per ``run()``.

    Steps run in order, each receiving the shared ``context`` dict (steps put ids there
    for later steps and compensations). When an action raises one of ``failure_types``,
    the compensations of the steps completed so far run in reverse order; each is retried
    up to ``compensation_attempts`` times with exponential backoff starting at
    ``compensation_wait_s``. Outcome: ``completed`` when every action succeeded,
    ``compensated`` when every needed compensation succeeded, ``failed`` otherwise.
    While ``skip_compensation()`` is true (a switch for showing a broken saga), a failed
    saga runs no compensation at all: its root span gets a ``saga.compensation.skipped``
    event naming the steps left undone, and it ends ``failed``.
    Exceptions of other types propagate (they are bugs, not business failures).
    """

    def __init__(
        self,
        name: str,
        steps: list[SagaStep],
        *,
        tracer: Tracer,
        failure_types: tuple[type[BaseException], ...] = (SagaStepError,),
        compensation_attempts: int = 3,
        compensation_wait_s: float = 0.05,
        sleep: Callable[[float], None] | None = None,
        skip_compensation: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.steps = list(steps)
        self._tracer = tracer
        self._failure_types = failure_types
        self._attempts = compensation_attempts
        self._wait_s = compensation_wait_s
        self._sleep = sleep
        self._skip_compensation = skip_compensation

    def run(self, context: dict[str, Any], saga_id: str | None = None) -> SagaResult:
        """Run the saga once and return its result; ``context['saga_id']`` is set."""
        saga_id = saga_id or uuid.uuid4().hex
        context["saga_id"] = saga_id
        result = SagaResult(saga_id=saga_id, outcome=COMPLETED)
        with self._tracer.start_as_current_span(
            f"saga {self.name}", attributes={SAGA_NAME: self.name, SAGA_ID: saga_id}
        ) as root:
            for index, step in enumerate(self.steps):
                try:
                    self._run_phase(step, index, PHASE_ACTION, step.action, context, saga_id)
                except self._failure_types as err:
                    result.failed_step, result.error = step.name, err
                    break
                result.completed.append(step.name)
            if result.failed_step is not None:
                if self._skip_compensation is not None and self._skip_compensation():
                    root.add_event(COMPENSATION_SKIPPED, {SAGA_STEP: list(reversed(result.completed))})
                    result.outcome = FAILED
                else:
                    self._compensate(result, context, saga_id)
                    result.outcome = FAILED if result.compensation_failures else COMPENSATED
                root.set_status(Status(StatusCode.ERROR, f"step {result.failed_step} failed: {result.error}"))
            root.set_attribute(SAGA_OUTCOME, result.outcome)
        return result

    def _compensate(self, result: SagaResult, context: dict[str, Any], saga_id: str) -> None:
        by_name = {step.name: (index, step) for index, step in enumerate(self.steps)}
        for name in reversed(result.completed):
            index, step = by_name[name]
            if step.compensation is None:
                continue
            try:
                self._run_phase(
                    step,
                    index,
                    PHASE_COMPENSATION,
                    self._retrying(step.compensation),
                    context,
                    saga_id,
                )
            except self._failure_types:
                result.compensation_failures.append(name)
            else:
                result.compensated.append(name)

    def _retrying(self, func: StepFunc) -> StepFunc:
        kwargs: dict[str, Any] = {}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._attempts),
            wait=tenacity.wait_exponential(multiplier=self._wait_s, max=2.0),
            retry=tenacity.retry_if_exception_type(self._failure_types),
            before_sleep=_record_retry,
            reraise=True,
            **kwargs,
        )
        return lambda context: retrying(func, context)

    def _run_phase(
        self,
        step: SagaStep,
        index: int,
        phase: str,
        func: StepFunc,
        context: dict[str, Any],
        saga_id: str,
    ) -> None:
        attributes = {
            SAGA_NAME: self.name,
            SAGA_ID: saga_id,
            SAGA_STEP: step.name,
            SAGA_STEP_INDEX: index,
            SAGA_PHASE: phase,
        }
        with self._tracer.start_as_current_span(
            f"saga {self.name} {phase} {step.name}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                func(context)
            except self._failure_types as err:
                span.record_exception(err)
                span.set_status(Status(StatusCode.ERROR, str(err)))
                raise


def _record_retry(state: tenacity.RetryCallState) -> None:
    """Note a failed compensation attempt on the compensation span before retrying."""
    error = state.outcome.exception() if state.outcome is not None else None
    trace.get_current_span().add_event(
        "saga.compensation.retry",
        {"attempt": state.attempt_number, "error": str(error)},
    )
