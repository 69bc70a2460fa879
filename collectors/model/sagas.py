"""Read models of sagas: one instance (a saga run) and the spans of its steps."""

from __future__ import annotations

from dataclasses import dataclass

from collectors.model.spans import STATUS_ERROR

SAGA_OUTCOMES = ("completed", "compensated", "failed")
"""The values of ``saga.outcome`` on a saga's root span."""

STEP_KINDS = ("compensatable", "pivot", "retriable")
"""The values of ``saga.step.kind``: undone by a compensation, the point of no return, and
retried forward until done."""

RUNNING = "running"
"""The status of a saga whose root span (which carries the outcome) has not arrived."""


@dataclass(frozen=True, slots=True)
class SagaStepSpan:
    """The span of one saga step: an action or a compensation, as it ran."""

    saga_id: str
    step: str
    step_index: int | None
    phase: str
    service: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    trace_id: str
    span_id: str
    kind: str | None = None
    """``saga.step.kind``: ``compensatable``, ``pivot`` or ``retriable`` (None: not given,
    read as compensatable)."""

    @property
    def is_error(self) -> bool:
        """Whether the step's span ended with status ERROR."""
        return self.status_code == STATUS_ERROR

    @property
    def forward_only(self) -> bool:
        """Whether the step is the pivot or after it: never compensated."""
        return self.kind in ("pivot", "retriable")


@dataclass(frozen=True, slots=True)
class SagaInstance:
    """One saga run; ``outcome`` is None while its root span has not arrived (running)."""

    saga_id: str
    name: str
    trace_id: str
    root_span_id: str
    service: str
    start_ns: int
    end_ns: int
    outcome: str | None

    @property
    def duration_ns(self) -> int:
        """First step start (or root start) to last end."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def status(self) -> str:
        """The outcome, or ``running`` while the saga has none."""
        return self.outcome or RUNNING


@dataclass(frozen=True, slots=True)
class SagaList:
    """Sagas, most recent first; ``truncated`` says more matched."""

    sagas: list[SagaInstance]
    truncated: bool
