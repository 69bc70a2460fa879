"""Unit tests for the circuit breaker wrapper."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from demo_services.patterns.breaker import CircuitBreaker, CircuitOpenError
from tests.demo.helpers import Spans
from tests.helpers import wait_until


class Boom(Exception):
    """A failing downstream call."""


def _fail() -> None:
    raise Boom("down")


@settings(max_examples=40, deadline=None)
@given(threshold=st.integers(1, 5), extra_calls=st.integers(1, 10))
def test_open_breaker_lets_no_call_through(threshold: int, extra_calls: int) -> None:
    breaker = CircuitBreaker("a->b", failure_threshold=threshold, reset_after_s=60, failure_types=(Boom,))
    for _ in range(threshold):
        with pytest.raises(Boom):
            breaker.call(_fail)
    invoked = []

    for _ in range(extra_calls):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: invoked.append(1))

    assert invoked == []
    assert breaker.state == "open"


def test_breaker_cycles_closed_open_half_open_closed_with_span_events(spans: Spans) -> None:
    breaker = CircuitBreaker("orders->payment", failure_threshold=2, reset_after_s=0.2, failure_types=(Boom,))
    for _ in range(2):
        with spans.tracer.start_as_current_span("call"), pytest.raises(Boom):
            breaker.call(_fail)
    with spans.tracer.start_as_current_span("rejected"), pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    wait_until(lambda: breaker.state == "half_open", timeout=5, interval=0.01, message="the breaker to turn half-open")
    with spans.tracer.start_as_current_span("trial"):
        assert breaker.call(lambda: "ok") == "ok"

    calls = {s.name: s for s in spans.finished()}
    tripping = [s for s in spans.finished() if s.name == "call"][-1]
    change = next(e for e in tripping.events if e.name == "circuit_breaker.state_change")
    assert change.attributes["circuit_breaker.state.from"] == "closed"
    assert change.attributes["circuit_breaker.state.to"] == "open"
    assert change.attributes["circuit_breaker.failure_count"] == 2
    rejected = calls["rejected"]
    assert rejected.attributes["circuit_breaker.rejected"] is True
    assert rejected.attributes["circuit_breaker.state"] == "open"
    assert rejected.status.is_ok is False
    trial = calls["trial"]
    assert trial.attributes["circuit_breaker.state"] == "half_open"
    transitions = [
        (e.attributes["circuit_breaker.state.from"], e.attributes["circuit_breaker.state.to"]) for e in trial.events
    ]
    assert transitions == [("open", "half_open"), ("half_open", "closed")]
    assert breaker.state == "closed"


def test_breaker_ignores_errors_outside_failure_types() -> None:
    breaker = CircuitBreaker("a->b", failure_threshold=1, reset_after_s=60, failure_types=(Boom,))

    with pytest.raises(KeyError):
        breaker.call(lambda: {}["missing"])

    assert breaker.state == "closed"


def test_calls_through_one_breaker_run_concurrently() -> None:
    breaker = CircuitBreaker("a->b", failure_threshold=3, reset_after_s=60, failure_types=(Boom,))
    inside = threading.Barrier(2, timeout=5)

    def call() -> None:
        breaker.call(inside.wait)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert not inside.broken, "the second call waited for the first to finish"
