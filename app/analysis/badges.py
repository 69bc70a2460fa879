"""Badges: what happened to a span, in a few words, read from its attributes and events.

The waterfall puts them beside the span's name, so a breaker's refusal, a saga's
compensation, a retry or a rate limit can be seen without opening the span. Each is
derived from the conventions in ``docs/conventions.md`` (breakers, sagas, retries) and
OpenTelemetry's (HTTP status, ``http.request.resend_count``, ``service.instance.id``);
a span that follows none of them gets only its instance, if its resource names one.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.analysis.chaos import status_of
from collectors.model import Span

BREAKER_NAME = "circuit_breaker.name"
BREAKER_REJECTED = "circuit_breaker.rejected"
SAGA_PHASE = "saga.phase"
SAGA_STEP = "saga.step"
PHASE_COMPENSATION = "compensation"
RETRY_ATTEMPT = "retry.attempt"
"""The attempt a call's span is, counted from 1 for the first try (Spyglass's convention)."""
RESEND_COUNT = "http.request.resend_count"
"""OpenTelemetry's HTTP resend count: 1 on the first resend, absent on the original request."""
SERVICE_INSTANCE_ID = "service.instance.id"
TOO_MANY_REQUESTS = 429


@dataclass(frozen=True, slots=True)
class Badge:
    """A short label for a span: ``kind`` names its style, ``title`` says it in full."""

    kind: str
    text: str
    title: str


def span_badges(span: Span) -> list[Badge]:
    """The badges of one span, most telling first; the instance, when known, last."""
    attrs = span.attributes
    out = []
    rejected = attrs.get(BREAKER_REJECTED)
    if rejected is True or rejected == "true":
        name = str(attrs.get(BREAKER_NAME, "")) or "its breaker"
        out.append(
            Badge("rejected", "rejected: breaker open", f"Refused by {name}, which was open: the call was never sent")
        )
    if status_of(span) == TOO_MANY_REQUESTS:
        out.append(Badge("throttled", "429 rate limited", "Refused by a rate limit (HTTP 429 Too Many Requests)"))
    if attrs.get(SAGA_PHASE) == PHASE_COMPENSATION:
        step = str(attrs.get(SAGA_STEP, "")) or "a step"
        out.append(Badge("compensation", "compensation", f"Undoes saga step {step}, after a later step failed"))
    retry = retry_number(span)
    if retry:
        out.append(Badge("retry", f"retry {retry}", _retry_title(span, retry)))
    instance = span.resource.attributes.get(SERVICE_INSTANCE_ID)
    if instance not in (None, ""):
        out.append(Badge("instance", str(instance), f"Instance (service.instance.id) {instance}"))
    return out


def retry_number(span: Span) -> int:
    """Which retry this span is (0 for a first try), or how many retries ran inside it."""
    attempt = _count(span.attributes.get(RETRY_ATTEMPT))
    if attempt > 1:
        return attempt - 1
    resent = _count(span.attributes.get(RESEND_COUNT))
    if resent:
        return resent
    return sum(1 for e in span.events if is_retry_event(e.name, e.attributes))


def is_retry_event(name: str, attributes: dict) -> bool:
    """Whether an event notes a failed attempt that was retried (``*.retry`` or ``retry.attempt``)."""
    return name == "retry" or name.endswith(".retry") or RETRY_ATTEMPT in attributes


def _retry_title(span: Span, retry: int) -> str:
    if _count(span.attributes.get(RETRY_ATTEMPT)) > 1 or _count(span.attributes.get(RESEND_COUNT)):
        return f"This call is retry {retry}: an earlier attempt failed"
    return f"{retry} failed attempt{'s' if retry != 1 else ''} retried within this span"


def _count(value: object) -> int:
    """A non-negative integer attribute, 0 for anything else (hostile input included)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0
    try:
        number = int(value)
    except ValueError:
        return 0
    return number if 0 < number < 1_000_000 else 0
