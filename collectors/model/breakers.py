"""Read models of circuit breakers: the calls made through each, and its state changes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BreakerCalls:
    """Calls made through one breaker by one caller in a window, its latest state, and
    the settings its spans last recorded (``circuit_breaker.failure_threshold``,
    ``circuit_breaker.reset_timeout_ms``; None when they record none).

    ``state_since_ns`` is when the calls first recorded ``last_state`` without a break: the
    latest call of the earliest minute of the run of minutes whose latest call recorded
    it, over every stored minute up to the window's end (None without a state).
    """

    name: str
    caller: str
    callee: str
    call_count: int
    failure_count: int
    rejected_count: int
    last_ns: int
    last_state: str
    failure_threshold: int | None = None
    reset_timeout_ms: int | None = None
    state_since_ns: int | None = None


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """One ``circuit_breaker.state_change`` event and the span that carried it."""

    name: str
    caller: str
    time_ns: int
    from_state: str
    to_state: str
    failure_count: int | None
    trace_id: str
    span_id: str
