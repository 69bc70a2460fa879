"""Orchestrated saga with a pivot: compensatable steps, the pivot, then retriable steps.

As the pattern has it: the steps before the pivot can be undone, each by its compensation,
and a failure there compensates the completed ones in reverse order; the pivot is the step
after which the saga can no longer be undone (the payment is captured); the steps after it
cannot fail for business reasons and are retried until they are done, never compensated.
Retries are for transient errors only (``SagaStepError(transient=True)``: a refused
connection, a timeout, a 5xx); a business answer such as a 409 fails at once.

With a :class:`~demo_services.patterns.saga_log.SagaLog`, every phase of every step is
logged before and after it runs, so another process can :meth:`SagaOrchestrator.resume`
an unfinished saga (``saga_recovery.py`` does, at start-up and every second): before the
pivot it compensates what completed, after it it carries the retriable steps forward. The
resumed run continues the saga's trace (its root span's context is kept in the log) with a
root span marked ``saga.resumed``.

No well-kept Python library implements an in-process saga orchestrator with tracing, so
this one is written by hand; tenacity does the retrying (``retry.py``). Spans follow
docs/conventions.md.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from demo_services.patterns.retry import is_transient, retrying
from demo_services.patterns.saga_log import COMPENSATING, DONE, FAILED_ENTRY, FORWARD, STARTED, SagaLog, SagaRecord

SAGA_NAME = "saga.name"
SAGA_ID = "saga.id"
SAGA_OUTCOME = "saga.outcome"
SAGA_STEP = "saga.step"
SAGA_STEP_INDEX = "saga.step.index"
SAGA_STEP_KIND = "saga.step.kind"
SAGA_PHASE = "saga.phase"
SAGA_RESUMED = "saga.resumed"
PHASE_ACTION = "action"
PHASE_COMPENSATION = "compensation"
KIND_COMPENSATABLE = "compensatable"
KIND_PIVOT = "pivot"
KIND_RETRIABLE = "retriable"
COMPLETED = "completed"
COMPENSATED = "compensated"
FAILED = "failed"
PENDING = "pending"
"""Not an outcome: the pivot passed and a retriable step is still being retried."""
COMPENSATION_SKIPPED = "saga.compensation.skipped"
STEP_RETRY = "saga.step.retry"
RESUMED_EVENT = "saga.resumed"
PENDING_EVENT = "saga.pending"

StepFunc = Callable[[dict[str, Any]], None]


class SagaStepError(Exception):
    """A step's action or compensation failed in a way the saga handles.

    ``transient`` says a retry may succeed (connection refused, timeout, 5xx); a business
    answer (card declined, out of stock, a 409) is not. ``retry_after_s`` is a wait the
    called service asked for (``Retry-After``).
    """

    def __init__(self, message: str, *, transient: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SagaStep:
    """One step: its action, the compensation that undoes it, and its kind."""

    name: str
    action: StepFunc
    compensation: StepFunc | None = None
    kind: str = KIND_COMPENSATABLE


@dataclass
class SagaResult:
    """What happened: the outcome (or ``pending``), the steps completed and compensated."""

    saga_id: str
    outcome: str
    completed: list[str] = field(default_factory=list)
    failed_step: str | None = None
    error: BaseException | None = None
    compensated: list[str] = field(default_factory=list)
    compensation_failures: list[str] = field(default_factory=list)
    resumed: bool = False
    pending: str | None = None
    """The step (action after the pivot, or compensation) left to be retried later."""


def check_steps(steps: list[SagaStep]) -> None:
    """Raise ``ValueError`` unless the steps are compensatable ones, at most one pivot, then
    retriable ones, and only compensatable steps have compensations."""
    order = {KIND_COMPENSATABLE: 0, KIND_PIVOT: 1, KIND_RETRIABLE: 2}
    ranks = []
    for step in steps:
        if step.kind not in order:
            raise ValueError(f"step {step.name!r}: unknown kind {step.kind!r}")
        if step.kind != KIND_COMPENSATABLE and step.compensation is not None:
            raise ValueError(f"step {step.name!r}: a {step.kind} step has no compensation")
        ranks.append(order[step.kind])
    if ranks != sorted(ranks) or ranks.count(1) > 1:
        raise ValueError("steps must be compensatable ones, then at most one pivot, then retriable ones")
    if 2 in ranks and 1 not in ranks:
        raise ValueError("retriable steps come after a pivot")


class SagaOrchestrator:
    """Run a fixed list of steps as one saga instance per ``run()``.

    Steps run in order, each receiving the shared ``context`` dict (steps put ids there
    for later steps and compensations). A compensatable action runs once; the pivot and the
    compensations are retried up to ``retry_attempts`` times and a retriable action up to
    ``forward_attempts`` times, on transient errors only, with exponential backoff from
    ``retry_wait_s`` (or the ``Retry-After`` the error carries); each failed attempt is a
    ``saga.step.retry`` event on the step's span.

    A failed compensatable action or pivot makes the completed steps compensate in reverse:
    outcome ``compensated``, or ``failed`` when a compensation failed for good (a business
    answer: the system needs attention). A retriable action or a compensation that keeps
    failing transiently leaves the saga ``pending`` (its root span gets a ``saga.pending``
    event and no outcome) for :class:`~demo_services.patterns.saga_recovery.SagaRecovery` to
    carry on from there later; a
    retriable action that fails for good ends it ``failed`` (it cannot be compensated).
    The error of a failed action is put in ``context['saga_error']`` for the compensations.
    While ``skip_compensation()`` is true (a switch for showing a broken saga), a failed
    saga runs no compensation: a ``saga.compensation.skipped`` event, outcome ``failed``.
    ``before_step(name)`` runs before each action (a fault switch can hold the saga there).
    Exceptions outside ``failure_types`` propagate (they are bugs, not business failures).
    """

    def __init__(
        self,
        name: str,
        steps: list[SagaStep],
        *,
        tracer: Tracer,
        failure_types: tuple[type[BaseException], ...] = (SagaStepError,),
        log: SagaLog | None = None,
        retry_attempts: int = 3,
        forward_attempts: int = 4,
        retry_wait_s: float = 0.05,
        sleep: Callable[[float], None] | None = None,
        skip_compensation: Callable[[], bool] | None = None,
        before_step: Callable[[str], None] | None = None,
    ) -> None:
        check_steps(steps)
        self.name = name
        self.steps = list(steps)
        self._tracer = tracer
        self._failure_types = failure_types
        self._log = log
        self._attempts = {KIND_COMPENSATABLE: 1, KIND_PIVOT: retry_attempts, KIND_RETRIABLE: forward_attempts}
        self._compensation_attempts = retry_attempts
        self._wait_s = retry_wait_s
        self._sleep = sleep
        self._skip_compensation = skip_compensation
        self._before_step = before_step
        self._lock = threading.Lock()
        self._active: set[str] = set()

    # -- running -------------------------------------------------------------------------------

    def run(self, context: dict[str, Any], saga_id: str | None = None) -> SagaResult:
        """Run the saga once and return its result; ``context['saga_id']`` is set."""
        saga_id = saga_id or uuid.uuid4().hex
        context["saga_id"] = saga_id
        result = SagaResult(saga_id=saga_id, outcome=COMPLETED)
        with self._holding(saga_id), self._root(saga_id, None) as root:
            if self._log is not None:
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                self._log.begin(saga_id, self.name, context, carrier)
            self._forward(context, result, 0)
            self._finish(root, result, context, set())
        return result

    def claim(self, saga_id: str) -> bool:
        """Take the saga for this thread unless a run or resume holds it; True when taken."""
        with self._lock:
            if saga_id in self._active:
                return False
            self._active.add(saga_id)
            return True

    def release(self, saga_id: str) -> None:
        """Give back a saga taken with :meth:`claim`."""
        with self._lock:
            self._active.discard(saga_id)

    def resume(self, record: SagaRecord) -> SagaResult:
        """Finish a saga another run left unfinished (the log's ``record`` of it); the caller
        holds its :meth:`claim` and read ``record`` after taking it.

        Before the pivot, the step it stopped at is marked interrupted (an action span with
        status ERROR) and the completed steps are compensated in reverse; a pivot that was
        started but not logged as done is run again (it must be idempotent), since it may
        have taken effect. After the pivot, the remaining retriable steps are carried forward.
        """
        context = dict(record.context)
        context["saga_id"] = record.saga_id
        completed = record.completed(PHASE_ACTION)
        result = SagaResult(record.saga_id, COMPLETED, completed=list(completed), resumed=True)
        done = set(completed)
        at = next((i for i, s in enumerate(self.steps) if s.name not in done), len(self.steps))
        with self._root(record.saga_id, propagate.extract(record.trace_parent)) as root:
            root.add_event(RESUMED_EVENT, {"saga.status": record.status, SAGA_STEP: self._step_name(at)})
            last = record.entries[-1] if record.entries else None
            pivot_in_flight = (
                at < len(self.steps)
                and self.steps[at].kind == KIND_PIVOT
                and last is not None
                and (last.step, last.phase, last.event) == (self.steps[at].name, PHASE_ACTION, STARTED)
            )
            if record.status == FORWARD or (record.status != COMPENSATING and pivot_in_flight):
                self._forward(context, result, at)
                self._finish(root, result, context, set())
            elif record.status == COMPENSATING:
                failed = [e.step for e in record.entries if e.phase == PHASE_ACTION and e.event == FAILED_ENTRY]
                result.failed_step = failed[-1] if failed else self._step_name(at)
                result.error = SagaStepError("the saga was compensating when its orchestrator stopped")
                already = set(record.completed(PHASE_COMPENSATION))
                result.compensated = [n for n in reversed(completed) if n in already]
                self._finish(root, result, context, already)
            elif at == len(self.steps):
                self._finish(root, result, context, set())
            else:
                self._interrupted(at, context, result)
                self._finish(root, result, context, set())
        return result

    # -- the passes ----------------------------------------------------------------------------

    def _forward(self, context: dict[str, Any], result: SagaResult, start: int) -> None:
        for index in range(start, len(self.steps)):
            step = self.steps[index]
            if self._before_step is not None:
                self._before_step(step.name)
            self._record(result.saga_id, step, index, PHASE_ACTION, STARTED)
            try:
                action = self._retrying(step.action, self._attempts[step.kind])
                self._run_phase(step, index, PHASE_ACTION, action, context, result.saga_id)
            except self._failure_types as err:
                result.failed_step, result.error = step.name, err
                if step.kind == KIND_RETRIABLE:
                    result.outcome = PENDING if is_transient(err) else FAILED
                    result.pending = step.name if result.outcome == PENDING else None
                else:
                    context["saga_error"] = str(err)
                self._record(result.saga_id, step, index, PHASE_ACTION, FAILED_ENTRY, detail=str(err), context=context)
                return
            result.completed.append(step.name)
            status = FORWARD if step.kind == KIND_PIVOT else None
            self._record(result.saga_id, step, index, PHASE_ACTION, DONE, context=context, status=status)

    def _finish(self, root: Span, result: SagaResult, context: dict[str, Any], already: set[str]) -> None:
        if result.outcome == PENDING:
            root.add_event(PENDING_EVENT, {SAGA_STEP: str(result.pending), SAGA_PHASE: PHASE_ACTION})
            return
        if result.failed_step is None:
            result.outcome = COMPLETED
        elif result.outcome == FAILED:
            root.set_status(
                Status(StatusCode.ERROR, f"step {result.failed_step} failed after the pivot: {result.error}")
            )
        else:
            if self._skip_compensation is not None and self._skip_compensation():
                root.add_event(COMPENSATION_SKIPPED, {SAGA_STEP: list(reversed(result.completed))})
                result.outcome = FAILED
            else:
                self._compensate(result, context, already)
                if result.outcome == PENDING:
                    root.add_event(PENDING_EVENT, {SAGA_STEP: str(result.pending), SAGA_PHASE: PHASE_COMPENSATION})
                    root.set_status(Status(StatusCode.ERROR, f"step {result.failed_step} failed: {result.error}"))
                    return
                result.outcome = FAILED if result.compensation_failures else COMPENSATED
            root.set_status(Status(StatusCode.ERROR, f"step {result.failed_step} failed: {result.error}"))
        root.set_attribute(SAGA_OUTCOME, result.outcome)
        if self._log is not None:
            self._log.set_status(result.saga_id, result.outcome)

    def _compensate(self, result: SagaResult, context: dict[str, Any], already: set[str]) -> None:
        if self._log is not None:
            self._log.set_status(result.saga_id, COMPENSATING)
        by_name = {step.name: (index, step) for index, step in enumerate(self.steps)}
        for name in reversed(result.completed):
            index, step = by_name[name]
            if step.compensation is None or name in already:
                continue
            self._record(result.saga_id, step, index, PHASE_COMPENSATION, STARTED)
            try:
                compensation = self._retrying(step.compensation, self._compensation_attempts)
                self._run_phase(step, index, PHASE_COMPENSATION, compensation, context, result.saga_id)
            except self._failure_types as err:
                self._record(result.saga_id, step, index, PHASE_COMPENSATION, FAILED_ENTRY, detail=str(err))
                if is_transient(err):
                    # Compensations run newest first: the older ones wait for this one.
                    result.outcome, result.pending = PENDING, name
                    return
                result.compensation_failures.append(name)
            else:
                result.compensated.append(name)
                self._record(result.saga_id, step, index, PHASE_COMPENSATION, DONE)

    def _interrupted(self, index: int, context: dict[str, Any], result: SagaResult) -> None:
        """Mark the step a stopped run was at as failed (an action span with status ERROR)."""
        step = self.steps[index]
        error = SagaStepError(f"interrupted: the orchestrator stopped before {step.name} completed")
        attributes = self._attributes(step, index, PHASE_ACTION, result.saga_id)
        with self._tracer.start_as_current_span(f"saga {self.name} action {step.name}", attributes=attributes) as span:
            span.set_status(Status(StatusCode.ERROR, str(error)))
        result.failed_step, result.error = step.name, error
        context["saga_error"] = str(error)
        self._record(result.saga_id, step, index, PHASE_ACTION, FAILED_ENTRY, detail=str(error), context=context)

    # -- helpers -------------------------------------------------------------------------------

    @contextmanager
    def _holding(self, saga_id: str) -> Iterator[None]:
        with self._lock:
            self._active.add(saga_id)
        try:
            yield
        finally:
            self.release(saga_id)

    def _root(self, saga_id: str, parent: Context | None) -> Any:
        attributes: dict[str, Any] = {SAGA_NAME: self.name, SAGA_ID: saga_id}
        if parent is not None:
            attributes[SAGA_RESUMED] = True
        return self._tracer.start_as_current_span(f"saga {self.name}", context=parent, attributes=attributes)

    def _step_name(self, index: int) -> str:
        return self.steps[index].name if index < len(self.steps) else ""

    def _record(self, saga_id: str, step: SagaStep, index: int, phase: str, event: str, **kwargs: Any) -> None:
        if self._log is not None:
            self._log.record(saga_id, step.name, index, phase, event, **kwargs)

    def _retrying(self, func: StepFunc, attempts: int) -> StepFunc:
        return retrying(
            func,
            attempts=attempts,
            errors=self._failure_types,
            event=STEP_RETRY,
            wait_s=self._wait_s,
            sleep=self._sleep,
        )

    def _attributes(self, step: SagaStep, index: int, phase: str, saga_id: str) -> dict[str, Any]:
        return {
            SAGA_NAME: self.name,
            SAGA_ID: saga_id,
            SAGA_STEP: step.name,
            SAGA_STEP_INDEX: index,
            SAGA_STEP_KIND: step.kind,
            SAGA_PHASE: phase,
        }

    def _run_phase(
        self,
        step: SagaStep,
        index: int,
        phase: str,
        func: StepFunc,
        context: dict[str, Any],
        saga_id: str,
    ) -> None:
        with self._tracer.start_as_current_span(
            f"saga {self.name} {phase} {step.name}",
            attributes=self._attributes(step, index, phase, saga_id),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                func(context)
            except self._failure_types as err:
                span.record_exception(err)
                span.set_status(Status(StatusCode.ERROR, str(err)))
                raise
