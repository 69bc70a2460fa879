"""Retries for transient errors only, with tenacity: backoff, ``Retry-After``, and each
attempt visible in the trace.

An error is worth retrying when it says so (``transient = True``: a refused connection, a
timeout, a 5xx, a 429); a business answer (a 402, a 409) is final. Each failed attempt is an
event on the current span (attribute ``retry.attempt``, the attempt that failed), and the
attempt running is readable with :func:`current_attempt`, so the calls it makes can carry
``retry.attempt`` on their own spans (docs/conventions.md).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import tenacity
from opentelemetry import trace

RETRY_ATTEMPT = "retry.attempt"
MAX_WAIT_S = 2.0
MAX_RETRY_AFTER_S = 5.0

T = TypeVar("T")
_attempt: ContextVar[int] = ContextVar("retry_attempt", default=1)


def current_attempt() -> int:
    """The attempt (from 1) of the retried call running in this thread (1 outside one)."""
    return _attempt.get()


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` says a retry may succeed (its ``transient`` attribute)."""
    return bool(getattr(error, "transient", False))


def retrying(
    func: Callable[[T], None],
    *,
    attempts: int,
    errors: tuple[type[BaseException], ...],
    event: str,
    wait_s: float = 0.05,
    sleep: Callable[[float], None] | None = None,
) -> Callable[[T], None]:
    """Wrap ``func`` so that it runs up to ``attempts`` times while it raises a transient
    error of ``errors``; the last error is raised. Waits grow from ``wait_s`` (doubling, at
    most 2 s) or follow the error's ``retry_after_s`` (at most 5 s); each failed attempt is
    an ``event`` on the current span with ``retry.attempt`` and ``error``."""
    if attempts <= 1:
        return func
    kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}

    def wait(state: tenacity.RetryCallState) -> float:
        backoff = min(wait_s * 2 ** (state.attempt_number - 1), MAX_WAIT_S)
        error = state.outcome.exception() if state.outcome is not None else None
        asked = getattr(error, "retry_after_s", None) or 0.0
        return max(backoff, min(float(asked), MAX_RETRY_AFTER_S))

    def record(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        trace.get_current_span().add_event(event, {RETRY_ATTEMPT: state.attempt_number, "error": str(error)})

    def run(argument: T) -> None:
        for attempt in tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, errors) and is_transient(e)),
            before_sleep=record,
            reraise=True,
            **kwargs,
        ):
            with attempt:
                token = _attempt.set(attempt.retry_state.attempt_number)
                try:
                    func(argument)
                finally:
                    _attempt.reset(token)

    return run
