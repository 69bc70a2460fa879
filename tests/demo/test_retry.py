"""Unit tests of transient-only retries: what is retried, how long it waits, what the span says."""

from __future__ import annotations

import pytest

from demo_services.patterns.retry import current_attempt, retrying
from demo_services.patterns.saga import SagaStepError
from tests.demo.helpers import Spans


def flaky(errors: list[SagaStepError], seen: list[int]):
    def run(_argument: object) -> None:
        seen.append(current_attempt())
        if errors:
            raise errors.pop(0)

    return run


def test_transient_errors_are_retried_with_backoff_or_the_wait_the_service_asked_for(spans: Spans) -> None:
    seen: list[int] = []
    waits: list[float] = []
    errors = [
        SagaStepError("503", transient=True),
        SagaStepError("429", transient=True, retry_after_s=1.5),
        SagaStepError("503", transient=True, retry_after_s=60),
    ]
    call = retrying(
        flaky(errors, seen), attempts=4, errors=(SagaStepError,), event="retry", wait_s=0.1, sleep=waits.append
    )

    with spans.tracer.start_as_current_span("call"):
        call(None)

    assert seen == [1, 2, 3, 4]
    assert waits == [0.1, 1.5, 5.0]  # doubling from 0.1 s, Retry-After honoured, capped at 5 s
    (span,) = spans.finished()
    assert [(e.name, e.attributes["retry.attempt"]) for e in span.events] == [("retry", 1), ("retry", 2), ("retry", 3)]
    assert current_attempt() == 1


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_business_answer_is_raised_at_once(attempts: int) -> None:
    seen: list[int] = []
    call = retrying(
        flaky([SagaStepError("409 conflict")], seen), attempts=attempts, errors=(SagaStepError,), event="retry"
    )

    with pytest.raises(SagaStepError, match="409"):
        call(None)
    assert seen == [1]


def test_the_last_transient_error_is_raised_when_the_attempts_run_out() -> None:
    seen: list[int] = []
    errors = [SagaStepError(f"503 #{i}", transient=True) for i in range(5)]
    call = retrying(flaky(errors, seen), attempts=3, errors=(SagaStepError,), event="retry", sleep=lambda _s: None)

    with pytest.raises(SagaStepError, match="#2"):
        call(None)
    assert seen == [1, 2, 3]
