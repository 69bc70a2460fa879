"""Circuit breaker: pybreaker wrapped so that every call and state change shows in traces.

pybreaker does the counting and the closed -> open -> half-open -> closed cycle. This
module adds what DESIGN.md asks of a breaker in Spyglass: the attributes
``circuit_breaker.name``, ``circuit_breaker.state`` and the breaker's settings
(``circuit_breaker.failure_threshold``, ``circuit_breaker.reset_timeout_ms``) on the span of each call (the
caller's current span, normally the CLIENT span), ``circuit_breaker.rejected`` plus status
ERROR for a call refused while open, and a ``circuit_breaker.state_change`` span event
emitted from pybreaker's listener hook.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pybreaker
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

BREAKER_NAME = "circuit_breaker.name"
BREAKER_STATE = "circuit_breaker.state"
BREAKER_REJECTED = "circuit_breaker.rejected"
STATE_CHANGE_EVENT = "circuit_breaker.state_change"
STATE_FROM = "circuit_breaker.state.from"
STATE_TO = "circuit_breaker.state.to"
FAILURE_COUNT = "circuit_breaker.failure_count"
FAILURE_THRESHOLD = "circuit_breaker.failure_threshold"
RESET_TIMEOUT_MS = "circuit_breaker.reset_timeout_ms"

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
_STATE_NAMES = {
    pybreaker.STATE_CLOSED: CLOSED,
    pybreaker.STATE_OPEN: OPEN,
    pybreaker.STATE_HALF_OPEN: HALF_OPEN,
}

T = TypeVar("T")


class CircuitOpenError(Exception):
    """A call was refused because the breaker is open."""

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit breaker {name} is open; call refused")
        self.name = name


class CircuitBreaker:
    """A named breaker (e.g. ``orders->payment``) that records itself on the current span.

    ``call(func)`` runs ``func`` unless the breaker is open. Exceptions of the types in
    ``failure_types`` count as failures; after ``failure_threshold`` consecutive failures
    the breaker opens, and calls raise ``CircuitOpenError`` without running ``func`` until
    ``reset_after_s`` has passed. The next call is then a half-open trial: success closes
    the breaker, failure opens it again. The failing call that trips the breaker re-raises
    its own exception. ``clock`` (monotonic seconds) only serves ``state``, the state a
    call made now would see; pybreaker keeps its own timer. Calls run concurrently; while
    half-open, calls that arrive together are all trials.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_after_s: float,
        failure_types: Iterable[type[BaseException]] = (Exception,),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._clock = clock
        self._failure_types = tuple(failure_types)
        self._opened_at: float | None = None
        self._lock = threading.Lock()
        self._breaker = _ConcurrentBreaker(
            fail_max=failure_threshold,
            reset_timeout=reset_after_s,
            exclude=[self._is_not_failure],
            listeners=[_SpanListener(self)],
            name=name,
            throw_new_error_on_trip=False,
        )

    @property
    def state(self) -> str:
        """Return the state a call made now would see: closed, open or half_open."""
        current = _STATE_NAMES[self._breaker.current_state]
        with self._lock:
            opened_at = self._opened_at
        elapsed = self._clock() - opened_at if opened_at is not None else 0.0
        if current == OPEN and opened_at is not None and elapsed >= self._breaker.reset_timeout:
            return HALF_OPEN
        return current

    @property
    def failure_count(self) -> int:
        """Return the number of consecutive failures counted so far."""
        return self._breaker.fail_counter

    def call(self, func: Callable[[], T]) -> T:
        """Run ``func`` through the breaker; raise ``CircuitOpenError`` if it is open."""
        span = trace.get_current_span()
        span.set_attributes(
            {
                BREAKER_NAME: self.name,
                FAILURE_THRESHOLD: self._breaker.fail_max,
                RESET_TIMEOUT_MS: round(self._breaker.reset_timeout * 1000),
            }
        )
        try:
            # The state attribute is set by the listener's before_call hook, which sees
            # the state pybreaker actually runs the call in (half-open for a trial).
            return self._breaker.call(func)
        except pybreaker.CircuitBreakerError as err:
            span.set_attribute(BREAKER_STATE, OPEN)
            span.set_attribute(BREAKER_REJECTED, True)
            span.set_status(Status(StatusCode.ERROR, f"circuit breaker {self.name} is open"))
            raise CircuitOpenError(self.name) from err

    def _is_not_failure(self, exc: BaseException) -> bool:
        return not isinstance(exc, self._failure_types)

    def _record_state_change(self, old: str | None, new: str) -> None:
        with self._lock:
            self._opened_at = self._clock() if new == OPEN else None
        trace.get_current_span().add_event(
            STATE_CHANGE_EVENT,
            {
                BREAKER_NAME: self.name,
                STATE_FROM: old or CLOSED,
                STATE_TO: new,
                FAILURE_COUNT: self._breaker.fail_counter,
            },
        )


class _ConcurrentBreaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker without its per-call lock.

    ``pybreaker.CircuitBreaker.call`` holds one lock for the whole guarded call, so calls
    to a slow service would queue behind each other, and the demo would show that queue
    as if it were the service's own latency. State transitions keep their own locks.
    """

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.state.call(func, *args, **kwargs)


class _SpanListener(pybreaker.CircuitBreakerListener):
    """Forward pybreaker's state changes to the owning breaker."""

    def __init__(self, owner: CircuitBreaker) -> None:
        self._owner = owner

    def before_call(self, cb: pybreaker.CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        trace.get_current_span().set_attribute(BREAKER_STATE, _STATE_NAMES[cb.current_state])

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = _STATE_NAMES.get(old_state.name) if old_state is not None else None
        self._owner._record_state_change(old, _STATE_NAMES[new_state.name])
