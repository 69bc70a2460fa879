"""Circuit breakers: current state, time in state and a state timeline from transitions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from collectors.model import BreakerCalls, BreakerTransition

STATES = ("closed", "open", "half_open")
DEFAULT_STATE = "closed"
MIN_SHOWN_WIDTH = 1.0
"""Narrowest a segment is drawn, in percent of the window: an open period of a second in
a 15-minute window (0.1%) would be thinner than a pixel."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time in one state; ``left`` and ``width`` are percentages of the window.
    ``shown_width`` is the width to draw: at least MIN_SHOWN_WIDTH, so that a short open
    or half-open period never disappears (it is drawn over its neighbours)."""

    state: str
    start_ns: int
    end_ns: int
    left: float
    width: float

    @property
    def shown_width(self) -> float:
        """The width to draw, in percent of the window (see the class docstring)."""
        return max(self.width, MIN_SHOWN_WIDTH)


@dataclass(frozen=True, slots=True)
class Mark:
    """A transition on the timeline, at ``left`` percent of the window."""

    transition: BreakerTransition
    left: float


@dataclass(slots=True)
class BreakerView:
    """One breaker (name and caller) as the breakers page shows it."""

    name: str
    caller: str
    callee: str
    state: str
    since_ns: int | None
    time_in_state_ns: int | None
    call_count: int = 0
    failure_count: int = 0
    rejected_count: int = 0
    segments: list[Segment] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    failure_threshold: int | None = None
    reset_timeout_ms: int | None = None


def state_timeline(
    transitions: Sequence[BreakerTransition], start_ns: int, end_ns: int, initial_state: str
) -> list[Segment]:
    """Split [start_ns, end_ns] into segments of constant state.

    ``transitions`` are those of one breaker, in any order; ones outside the window are
    ignored. Consecutive segments always differ in state, and together they cover the
    window exactly.
    """
    span = max(end_ns - start_ns, 1)
    changes = sorted((t for t in transitions if start_ns <= t.time_ns <= end_ns), key=lambda t: t.time_ns)
    segments: list[tuple[str, int, int]] = []
    state, since = initial_state, start_ns
    for t in changes:
        if t.to_state == state:
            continue
        if t.time_ns > since:
            segments.append((state, since, t.time_ns))
        state, since = t.to_state, t.time_ns
    segments.append((state, since, end_ns))
    merged: list[tuple[str, int, int]] = []
    for seg in segments:
        if merged and merged[-1][0] == seg[0]:
            merged[-1] = (seg[0], merged[-1][1], seg[2])
        else:
            merged.append(seg)
    return [Segment(s, a, b, (a - start_ns) * 100 / span, (b - a) * 100 / span) for s, a, b in merged]


def summarize_breakers(
    calls: Iterable[BreakerCalls],
    transitions: Iterable[BreakerTransition],
    before: Mapping[str, BreakerTransition],
    start_ns: int,
    end_ns: int,
) -> list[BreakerView]:
    """One view per (breaker, caller) seen in the window, sorted by name then caller.

    The current state is the latest of the last transition and the last call's recorded
    state; the timeline starts from the state left by the last transition before the
    window (``before``, by breaker name), else the first transition's ``from`` state,
    else the current state. The state began at the transition into it; when no transition
    explains it (the calls recorded it, its transition was not sent), at the first call
    that recorded it (:attr:`BreakerCalls.state_since_ns`), after the last transition.
    """
    span = max(end_ns - start_ns, 1)
    by_key: dict[tuple[str, str], list[BreakerTransition]] = defaultdict(list)
    for t in transitions:
        by_key[(t.name, t.caller)].append(t)
    call_by_key = {(c.name, c.caller): c for c in calls}
    views = []
    for key in sorted(set(by_key) | set(call_by_key)):
        name, caller = key
        ts = sorted(by_key.get(key, []), key=lambda t: t.time_ns)
        c = call_by_key.get(key)
        last_t = ts[-1] if ts else before.get(name)
        state, since = DEFAULT_STATE, None
        if last_t is not None:
            state, since = last_t.to_state, last_t.time_ns
        if c is not None and c.last_state and (last_t is None or c.last_ns > last_t.time_ns) and c.last_state != state:
            state, since = c.last_state, c.state_since_ns
            if since is not None and last_t is not None:
                since = max(since, last_t.time_ns)
        elif last_t is None and c is not None and c.last_state == state:
            since = c.state_since_ns
        if before.get(name) is not None:
            initial = before[name].to_state
        elif ts:
            initial = ts[0].from_state
        else:
            initial = state
        callee = c.callee if c is not None else (name.split("->", 1)[1].strip() if "->" in name else "")
        views.append(
            BreakerView(
                name=name,
                caller=caller,
                callee=callee,
                state=state,
                since_ns=since,
                time_in_state_ns=end_ns - since if since is not None else None,
                call_count=c.call_count if c else 0,
                failure_count=c.failure_count if c else 0,
                rejected_count=c.rejected_count if c else 0,
                segments=state_timeline(ts, start_ns, end_ns, initial),
                marks=[Mark(t, (t.time_ns - start_ns) * 100 / span) for t in ts],
                failure_threshold=c.failure_threshold if c else None,
                reset_timeout_ms=c.reset_timeout_ms if c else None,
            )
        )
    return views


def edge_badges(views: Iterable[BreakerView]) -> dict[tuple[str, str], str]:
    """(caller, callee) to the worst current state among its breakers, for graph badges."""
    rank = {"open": 2, "half_open": 1}
    out: dict[tuple[str, str], str] = {}
    for v in views:
        if not v.callee:
            continue
        key = (v.caller, v.callee)
        if rank.get(v.state, 0) > rank.get(out.get(key, ""), 0):
            out[key] = v.state
    return out
