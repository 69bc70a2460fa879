"""Names the pattern tables share: the span attributes they read, the edge modes, the bucket.

The attribute keys are DESIGN.md's "Span conventions for patterns" and OpenTelemetry's;
the modes say how a call on an edge of the service graph was made.
"""

from __future__ import annotations

from typing import Any

from collectors.model import STATS_BUCKET_NS

BUCKET_NS = STATS_BUCKET_NS
"""Stats are kept per minute."""

# Span attribute keys (DESIGN.md "Span conventions for patterns" and OpenTelemetry).
CB_NAME = "circuit_breaker.name"
CB_STATE = "circuit_breaker.state"
CB_REJECTED = "circuit_breaker.rejected"
CB_EVENT = "circuit_breaker.state_change"
CB_FROM = "circuit_breaker.state.from"
CB_TO = "circuit_breaker.state.to"
CB_FAILURES = "circuit_breaker.failure_count"
CB_THRESHOLD = "circuit_breaker.failure_threshold"
CB_RESET_TIMEOUT = "circuit_breaker.reset_timeout_ms"
RATE_LIMIT = "rate_limit.limit"
RATE_LIMIT_WINDOW = "rate_limit.window_ms"
SAGA_NAME = "saga.name"
SAGA_ID = "saga.id"
SAGA_OUTCOME = "saga.outcome"
SAGA_STEP = "saga.step"
SAGA_STEP_INDEX = "saga.step.index"
SAGA_PHASE = "saga.phase"
SAGA_STEP_KIND = "saga.step.kind"
FAILOVER_EVENT = "discovery.failover"
FAILOVER_INSTANCE = "discovery.instance.id"
FAILOVER_REASON = "discovery.failover.reason"
FAILOVER_NEXT = "discovery.next_instance.id"
PEER_SERVICE = "peer.service"
DB_SYSTEM = "db.system"
DB_NAMESPACE = "db.namespace"
DB_NAME = "db.name"
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION = "messaging.destination.name"
SERVICE_INSTANCE_ID = "service.instance.id"
DISCOVERY_SERVICE = "discovery.service"
"""On a registry lookup's spans (the caller's CLIENT span, the registry's SERVER span): the
service looked up. Calls that carry it are lookups, an edge kind of their own."""
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
"""The HTTP status attribute: the stable name first, then the one older SDKs still send."""
THROTTLED_STATUS = 429
"""An answer of this status is a throttled request: counted apart, never as an error."""

MODE_SYNC = 0
MODE_ASYNC = 1
MODE_PEER_DB = 2
MODE_PEER_QUEUE = 3
MODE_PEER_SERVICE = 4
MODE_LOOKUP = 5
MODE_PEER_LOOKUP = 6
PAIRED_MODES = (MODE_SYNC, MODE_ASYNC, MODE_LOOKUP)
"""Modes of calls paired from two spans (the dependencies); the others are peers a span names."""
MODE_NAMES = {
    MODE_SYNC: "sync",
    MODE_ASYNC: "async",
    MODE_PEER_DB: "database",
    MODE_PEER_QUEUE: "queue",
    MODE_PEER_SERVICE: "peer",
    MODE_LOOKUP: "lookup",
    MODE_PEER_LOOKUP: "peer-lookup",
}


def http_status(attrs: dict[str, Any]) -> int | None:
    """The HTTP status code a span's attributes record (either name, integer or digits), or None."""
    for key in HTTP_STATUS_KEYS:
        value = attrs.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit() and len(value) <= 3:
            return int(value)
    return None


def whole_number(value: Any) -> int | None:
    """An attribute value as a non-negative integer (an int, or a float without a
    fraction), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    number = int(value)
    return number if 0 <= number < 2**62 else None


def judge_call(error: bool, status: int | None, *, caller: bool = False) -> tuple[bool, bool]:
    """(failed, throttled) of a request or call whose span has status ERROR (``error``) and
    HTTP status ``status`` (None when unknown).

    A 429 answer is throttled and never failed. On the caller's side (``caller``), another
    4xx answer is the callee's business answer (a declined card, an unknown id), as the
    callee's own span counts it: not a failure of the call, whatever the caller's status.
    """
    if status == THROTTLED_STATUS:
        return False, True
    if caller and status is not None and 400 <= status < 500:
        return False, False
    return error, False


def bucket_of(time_ns: int) -> int:
    """The start of the minute bucket ``time_ns`` falls in."""
    return time_ns - time_ns % BUCKET_NS


def in_window(column: Any, start_ns: int, end_ns: int) -> list[Any]:
    """Conditions on a ``bucket_ns`` column: buckets overlapping [start_ns, end_ns]."""
    return [column >= bucket_of(start_ns), column <= end_ns]
