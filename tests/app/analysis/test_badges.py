"""Badges: what happened to a span, from the breaker, saga, retry, HTTP and resource conventions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.analysis.badges import retry_number, span_badges
from collectors.model import STATUS_ERROR, Resource, Span, SpanEvent


def span(attributes: dict | None = None, *, events: tuple = (), resource: dict | None = None) -> Span:
    return Span(
        "ab" * 16,
        "cd" * 8,
        "",
        "POST payment",
        3,
        0,
        1_000_000,
        Resource("orders", resource or {}),
        attributes=attributes or {},
        events=events,
    )


def texts(s: Span) -> list[str]:
    return [b.text for b in span_badges(s)]


def test_a_call_an_open_breaker_refused_says_so_and_names_the_breaker():
    refused = span({"circuit_breaker.name": "orders->payment", "circuit_breaker.rejected": True})
    (badge,) = span_badges(refused)
    assert (badge.kind, badge.text) == ("rejected", "rejected: breaker open")
    assert "orders->payment" in badge.title
    assert texts(span({"circuit_breaker.rejected": "true"})) == ["rejected: breaker open"]


def test_calls_through_a_closed_breaker_and_unrelated_values_get_no_badge():
    assert texts(span({"circuit_breaker.name": "orders->payment", "circuit_breaker.rejected": False})) == []
    assert texts(span({"circuit_breaker.rejected": 1})) == []
    assert texts(span({"saga.phase": "action", "saga.step": "pay"})) == []
    assert texts(span({"http.response.status_code": 500})) == []


def test_compensation_steps_name_the_step_they_undo():
    (badge,) = span_badges(span({"saga.phase": "compensation", "saga.step": "reserve_inventory"}))
    assert (badge.kind, badge.text) == ("compensation", "compensation")
    assert "reserve_inventory" in badge.title


def test_throttled_requests_read_429_rate_limited_under_either_http_convention():
    assert texts(span({"http.response.status_code": 429})) == ["429 rate limited"]
    assert texts(span({"http.status_code": 429})) == ["429 rate limited"]


def test_retries_are_numbered_from_the_attempt_the_resend_count_or_the_retry_events():
    assert texts(span({"retry.attempt": 1})) == [], "a first attempt is not a retry"
    assert texts(span({"retry.attempt": 3})) == ["retry 2"]
    assert texts(span({"http.request.resend_count": 1})) == ["retry 1"]
    inside = span(
        events=(
            SpanEvent(1, "saga.compensation.retry", {"attempt": 1, "error": "busy"}),
            SpanEvent(2, "saga.compensation.retry", {"attempt": 2, "error": "busy"}),
            SpanEvent(3, "log", {}),
        )
    )
    (badge,) = span_badges(inside)
    assert badge.text == "retry 2" and "2 failed attempts" in badge.title


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.floats(), st.lists(st.integers())))
def test_hostile_retry_values_never_raise_and_never_count_below_one(value):
    n = retry_number(span({"retry.attempt": value, "http.request.resend_count": value}))
    assert n >= 0


def test_each_span_shows_its_instance_last_and_badges_combine():
    s = span(
        {"circuit_breaker.rejected": True, "retry.attempt": 2},
        resource={"service.instance.id": "orders-<1>"},
    )
    assert texts(s) == ["rejected: breaker open", "retry 1", "orders-<1>"]
    assert span_badges(s)[-1].kind == "instance"
    assert texts(span(resource={"service.instance.id": ""})) == []


def test_an_error_status_alone_adds_no_badge():
    s = span()
    s.status_code = STATUS_ERROR
    assert span_badges(s) == []
