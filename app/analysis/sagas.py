"""Sagas: the timeline of one instance and the checks of its compensations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from collectors.model import SagaInstance, SagaStepSpan

ACTION = "action"
COMPENSATION = "compensation"


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken saga rule, with the steps (spans) involved."""

    rule: str
    message: str
    steps: tuple[SagaStepSpan, ...] = ()


@dataclass(frozen=True, slots=True)
class SagaCheck:
    """The verdict on one saga: which rules held and what broke."""

    failed_step: SagaStepSpan | None
    completed: tuple[SagaStepSpan, ...]
    compensations: tuple[SagaStepSpan, ...]
    violations: tuple[Violation, ...]
    applicable: bool = True

    @property
    def ok(self) -> bool:
        """Whether no rule was broken."""
        return not self.violations


@dataclass(frozen=True, slots=True)
class Bar:
    """One step span on the timeline; ``left`` and ``width`` are percentages."""

    step: SagaStepSpan
    left: float
    width: float


@dataclass(slots=True)
class Lane:
    """One step of the saga with its action and compensation bars."""

    step: str
    index: int | None
    bars: list[Bar] = field(default_factory=list)


@dataclass(slots=True)
class SagaTimeline:
    """Lanes in step order and the failure point (percent), if any."""

    lanes: list[Lane]
    start_ns: int
    end_ns: int
    failure_left: float | None


def step_key(step: SagaStepSpan) -> tuple[int, str]:
    """Order steps by index, then name (steps without index sort last)."""
    return (step.step_index if step.step_index is not None else 1 << 30, step.step)


def failed_action(steps: Sequence[SagaStepSpan]) -> SagaStepSpan | None:
    """The first action (by start time) whose span ended with an error."""
    return next((s for s in sorted(steps, key=lambda s: s.start_ns) if s.phase == ACTION and s.is_error), None)


def saga_reason(saga: SagaInstance | None, steps: Sequence[SagaStepSpan]) -> str:
    """Why a saga did not complete, in a line: the failed action's status message (or that
    its step failed), and a compensation that failed too; empty when nothing failed."""
    failed = failed_action(steps)
    parts = []
    if failed is not None:
        parts.append(failed.status_message or f"step {failed.step} failed")
    broken = next((s for s in sorted(steps, key=lambda s: s.start_ns) if s.phase == COMPENSATION and s.is_error), None)
    if broken is not None:
        detail = f": {broken.status_message}" if broken.status_message else ""
        parts.append(f"compensating {broken.step} failed{detail}")
    if not parts and saga is not None and saga.outcome in ("compensated", "failed"):
        parts.append(f"the saga ended {saga.outcome} with no failed step span")
    return "; ".join(parts)


def check_saga(saga: SagaInstance | None, steps: Sequence[SagaStepSpan]) -> SagaCheck:
    """Check the compensation rules of an orchestrated saga.

    After a failed action, every action that completed before it must be compensated,
    exactly once, in the reverse order of the actions, and no step that did not complete
    may be compensated. A saga without a failure must have no compensations. A running
    saga (no outcome yet) is only checked for what already happened.
    """
    ordered = sorted(steps, key=lambda s: (s.start_ns, s.span_id))
    actions = [s for s in ordered if s.phase == ACTION]
    comps = [s for s in ordered if s.phase == COMPENSATION]
    failed = failed_action(actions)
    completed = tuple(a for a in actions if not a.is_error and (failed is None or a.start_ns < failed.start_ns))
    violations: list[Violation] = []
    outcome = saga.outcome if saga is not None else None

    counts = Counter(c.step for c in comps)
    for name, n in sorted(counts.items()):
        if n > 1:
            violations.append(
                Violation(
                    "twice", f"Compensation of step {name!r} ran {n} times.", tuple(c for c in comps if c.step == name)
                )
            )
    completed_names = {a.step for a in completed}
    for c in comps:
        if c.step not in completed_names:
            violations.append(
                Violation(
                    "not-completed", f"Step {c.step!r} was compensated but never completed before the failure.", (c,)
                )
            )
    if failed is not None and outcome is not None:
        compensated = {c.step for c in comps}
        for a in completed:
            if a.step not in compensated:
                violations.append(
                    Violation(
                        "missing", f"Step {a.step!r} completed before the failure but was never compensated.", (a,)
                    )
                )
    if failed is None and comps and outcome == "completed":
        violations.append(Violation("no-failure", "Compensations ran although no step failed.", tuple(comps)))
    first_comp = {}
    for c in comps:
        first_comp.setdefault(c.step, c)
    order = {a.step: i for i, a in enumerate(completed)}
    seq = [c for c in first_comp.values() if c.step in order]
    for earlier, later in zip(seq, seq[1:]):
        if order[later.step] > order[earlier.step]:
            violations.append(
                Violation(
                    "order",
                    f"Compensation of {later.step!r} ran after that of "
                    f"{earlier.step!r}: compensations must run in reverse order.",
                    (earlier, later),
                )
            )
    if failed is not None:
        early = [c for c in comps if c.start_ns < failed.start_ns]
        if early:
            violations.append(Violation("early", "Compensation started before any step failed.", tuple(early)))
    if outcome == "completed" and failed is not None:
        violations.append(Violation("outcome", f"The saga says completed but step {failed.step!r} failed.", (failed,)))
    if outcome == "compensated" and failed is None:
        violations.append(Violation("outcome", "The saga says compensated but no step failed.", ()))
    return SagaCheck(failed, completed, tuple(comps), tuple(violations), applicable=bool(steps))


def saga_timeline(saga: SagaInstance | None, steps: Sequence[SagaStepSpan]) -> SagaTimeline:
    """One lane per step (in step order), its spans as bars positioned over the saga's time."""
    if not steps:
        start = saga.start_ns if saga else 0
        end = saga.end_ns if saga else 0
        return SagaTimeline([], start, end, None)
    start = min([s.start_ns for s in steps] + ([saga.start_ns] if saga else []))
    end = max([s.end_ns for s in steps] + ([saga.end_ns] if saga else []))
    span = max(end - start, 1)
    lanes: dict[str, Lane] = {}
    for s in sorted(steps, key=step_key):
        lane = lanes.setdefault(s.step, Lane(s.step, s.step_index))
        lane.bars.append(Bar(s, (s.start_ns - start) * 100 / span, max((s.end_ns - s.start_ns) * 100 / span, 0.4)))
    for lane in lanes.values():
        lane.bars.sort(key=lambda b: b.step.start_ns)
    failed = failed_action(steps)
    return SagaTimeline(
        sorted(lanes.values(), key=lambda lane: (lane.index if lane.index is not None else 1 << 30, lane.step)),
        start,
        end,
        (failed.end_ns - start) * 100 / span if failed else None,
    )
