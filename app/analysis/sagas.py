"""Sagas: the timeline of one instance and the checks of its compensations."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from collectors.model import RUNNING, SAGA_OUTCOMES, SagaInstance, SagaStepSpan, Span

ACTION = "action"
COMPENSATION = "compensation"
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
AXIS_TICKS = 5
"""About how many ticks the time axis of a saga's timeline has."""


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
    """One step of the saga with its action and compensation bars; ``ran`` is False for a
    step the saga's type has (other instances ran it) but this instance never started."""

    step: str
    index: int | None
    bars: list[Bar] = field(default_factory=list)
    ran: bool = True
    kind: str | None = None
    """The step's ``saga.step.kind`` as its spans gave it (None: not given)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """A mark on the time axis: ``offset_ns`` after the saga's start, at ``left`` percent."""

    left: float
    offset_ns: int


@dataclass(slots=True)
class SagaTimeline:
    """Lanes in step order, the failure point (percent) if any, and the time axis."""

    lanes: list[Lane]
    start_ns: int
    end_ns: int
    failure_left: float | None
    ticks: list[Tick] = field(default_factory=list)

    @property
    def never_ran(self) -> list[Lane]:
        """The lanes of steps this instance never started."""
        return [lane for lane in self.lanes if not lane.ran]


@dataclass(frozen=True, slots=True)
class FailureCause:
    """Why a saga failed: the deepest error span under its failed step (the likely cause)."""

    step: str
    phase: str
    reason: str
    service: str
    span_name: str
    trace_id: str
    span_id: str


def step_key(step: SagaStepSpan) -> tuple[int, str]:
    """Order steps by index, then name (steps without index sort last)."""
    return (step.step_index if step.step_index is not None else 1 << 30, step.step)


def failed_action(steps: Sequence[SagaStepSpan]) -> SagaStepSpan | None:
    """The first action (by start time) whose span ended with an error and that is the
    saga's failure point: a compensatable step or the pivot. A retriable step after the
    pivot that failed is retried forward, not compensated, so it is no failure point."""
    return next(
        (
            s
            for s in sorted(steps, key=lambda s: s.start_ns)
            if s.phase == ACTION and s.is_error and s.kind != "retriable"
        ),
        None,
    )


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

    After a failed action (a compensatable step or the pivot; see ``failed_action``),
    every compensatable action that completed before it must be compensated, exactly once
    (a compensation retried after a transient error counts once when it succeeded), in the
    reverse order of the actions, and no step that did not complete, nor the pivot or a
    retriable step, may be compensated. A saga without a failure must have no compensations.
    A running saga (no outcome yet) is only checked for what already happened.
    """
    ordered = sorted(steps, key=lambda s: (s.start_ns, s.span_id))
    actions = [s for s in ordered if s.phase == ACTION]
    comps = [s for s in ordered if s.phase == COMPENSATION]
    failed = failed_action(actions)
    completed = tuple(
        a
        for a in actions
        if not a.is_error and not a.forward_only and (failed is None or a.start_ns < failed.start_ns)
    )
    violations: list[Violation] = []
    outcome = saga.outcome if saga is not None else None

    counts = Counter(c.step for c in comps if not c.is_error)
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


def axis_ticks(length_ns: int, target: int = AXIS_TICKS) -> list[Tick]:
    """Ticks from 0 to ``length_ns`` at a round step (1, 2 or 5 times a power of ten
    nanoseconds) that gives about ``target`` intervals."""
    if length_ns <= 0:
        return [Tick(0.0, 0)]
    raw = length_ns / target
    power = 10 ** max(0, math.floor(math.log10(raw)))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [Tick(i * step * 100 / length_ns, i * step) for i in range(int(length_ns // step) + 1)]


def saga_timeline(
    saga: SagaInstance | None,
    steps: Sequence[SagaStepSpan],
    known: Iterable[tuple[int | None, str, str | None]] = (),
) -> SagaTimeline:
    """One lane per step (in step order), its spans as bars positioned over the saga's time.

    ``known`` lists the (index, step, kind) of the steps the saga's type has (seen in other
    instances); each one this instance has no span of gets a lane that never ran, with
    the kind those instances gave it.
    """
    lanes = _lanes(saga, steps)
    have = {lane.step for lane in lanes.lanes}
    for index, step, kind in known:
        if step not in have:
            have.add(step)
            lanes.lanes.append(Lane(step, index, ran=False, kind=kind))
    lanes.lanes.sort(key=lambda lane: (lane.index if lane.index is not None else 1 << 30, lane.step))
    lanes.ticks = axis_ticks(lanes.end_ns - lanes.start_ns)
    return lanes


def failed_step(steps: Sequence[SagaStepSpan]) -> SagaStepSpan | None:
    """The saga's failed action, else its first failed compensation, else the first failed
    retriable action (after the pivot), else None."""
    ordered = sorted(steps, key=lambda s: s.start_ns)
    return (
        failed_action(ordered)
        or next((s for s in ordered if s.phase == COMPENSATION and s.is_error), None)
        or next((s for s in ordered if s.phase == ACTION and s.is_error), None)
    )


def failure_cause(steps: Sequence[SagaStepSpan], spans: Iterable[Span]) -> FailureCause | None:
    """The deepest error span under the saga's failed action (else its first failed
    compensation), with its status message or exception as the reason; None when no step
    failed. The step's own span stands in when its trace's spans are not given."""
    failed = failed_step(steps)
    if failed is None:
        return None
    by_id = {s.span_id: s for s in spans if s.trace_id == failed.trace_id}
    children: dict[str, list[Span]] = defaultdict(list)
    for s in by_id.values():
        children[s.parent_span_id].append(s)
    deepest, depth = by_id.get(failed.span_id), 0
    frontier = [(s, 1) for s in children.get(failed.span_id, [])]
    while frontier:
        s, d = frontier.pop()
        if s.is_error and (d > depth or (d == depth and deepest is not None and s.start_ns > deepest.start_ns)):
            deepest, depth = s, d
        frontier.extend((c, d + 1) for c in children.get(s.span_id, []))
    if deepest is None:
        reason = failed.status_message or f"step {failed.step} failed"
        name = f"{failed.phase} {failed.step}"
        return FailureCause(failed.step, failed.phase, reason, failed.service, name, failed.trace_id, failed.span_id)
    return FailureCause(
        failed.step, failed.phase, error_text(deepest), deepest.service, deepest.name, deepest.trace_id, deepest.span_id
    )


def error_text(span: Span) -> str:
    """What went wrong in a span: its status message, else its exception's type and message."""
    if span.status_message:
        return span.status_message
    for event in span.events:
        if event.name == EXCEPTION_EVENT:
            kind = str(event.attributes.get(EXCEPTION_TYPE) or "")
            message = str(event.attributes.get(EXCEPTION_MESSAGE) or "")
            text = ": ".join(p for p in (kind, message) if p)
            if text:
                return text
    return "status ERROR, with no message"


def outcome_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Every outcome and ``running`` with its count (0 when none), in that order."""
    return [(o, counts.get(o, 0)) for o in (*SAGA_OUTCOMES, RUNNING)]


def _lanes(saga: SagaInstance | None, steps: Sequence[SagaStepSpan]) -> SagaTimeline:
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
        lane.kind = lane.kind or s.kind
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
