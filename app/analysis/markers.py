"""Event markers: a span's events placed on its waterfall bar, each with what it says.

A marker sits at the event's time on the trace's axis (after the same clock-skew shift as
its span) and carries the text its tooltip shows: the event's name, its offset from the
span's start, a one-line summary for the events the patterns emit (an exception, a
breaker's state change, a discovery fail-over, a retry) and its attributes, each cut to
a readable length. The text is plain; the template escapes it like any span data.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.analysis.badges import is_retry_event
from app.analysis.tree import Row
from app.analysis.values import EXCEPTION_EVENT, EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE, EXCEPTION_TYPE, typed
from collectors.model import SpanEvent

STATE_CHANGE_EVENT = "circuit_breaker.state_change"
BREAKER_NAME = "circuit_breaker.name"
STATE_FROM = "circuit_breaker.state.from"
STATE_TO = "circuit_breaker.state.to"
FAILURE_COUNT = "circuit_breaker.failure_count"
FAILOVER_EVENT = "discovery.failover"
FAILOVER_INSTANCE = "discovery.instance.id"
FAILOVER_REASON = "discovery.failover.reason"
FAILOVER_NEXT = "discovery.next_instance.id"
MARKERS_PER_SPAN = 24
"""Markers drawn on one bar; the span's panel lists every event."""
CLOSE = 0.008
"""Markers nearer than this fraction of the trace (about a marker's width on a usual
track) to the one before are drawn beside it instead of on top of it."""
TOOLTIP_ATTRIBUTES = 12
TOOLTIP_VALUE_CHARS = 200
_KIND_RANK = {"exception": 0, "breaker": 0, "failover": 0, "retry": 0, "event": 1}


@dataclass(frozen=True, slots=True)
class EventMarker:
    """One event on a bar: ``at`` is its place on the trace's axis (0..1)."""

    kind: str
    name: str
    at: float
    offset_ns: int
    summary: str
    attributes: tuple[tuple[str, str], ...]
    attributes_left_off: int = 0
    nudge: int = 0
    """How many markers just before this one are at nearly the same place: the bar draws
    it that many marker widths to the right, so that each can be pointed at."""


def event_markers(row: Row, trace_start_ns: int, trace_duration_ns: int) -> tuple[list[EventMarker], int]:
    """The markers of a row's events in time order, and how many were left off.

    When a span has more than :data:`MARKERS_PER_SPAN` events, the pattern events are
    kept before other ones. Markers closer than :data:`CLOSE` to the one before are nudged.
    """
    events = list(enumerate(row.span.events))
    if len(events) > MARKERS_PER_SPAN:
        events.sort(key=lambda item: (_KIND_RANK[event_kind(item[1])], item[0]))
        events = events[:MARKERS_PER_SPAN]
    events.sort(key=lambda item: (item[1].time_ns, item[0]))
    total = max(1, trace_duration_ns)
    markers: list[EventMarker] = []
    for _, e in events:
        at = min(1.0, max(0.0, (e.time_ns + row.shift_ns - trace_start_ns) / total))
        nudge = markers[-1].nudge + 1 if markers and at - markers[-1].at < CLOSE else 0
        shown = _tooltip_attributes(e)
        markers.append(
            EventMarker(
                kind=event_kind(e),
                name=_cut(e.name),
                at=at,
                offset_ns=e.time_ns - row.span.start_ns,
                summary=event_summary(e),
                attributes=shown,
                attributes_left_off=len(e.attributes) - (EXCEPTION_STACKTRACE in e.attributes) - len(shown),
                nudge=nudge,
            )
        )
    return markers, len(row.span.events) - len(markers)


def event_kind(event: SpanEvent) -> str:
    """``exception``, ``breaker``, ``failover``, ``retry`` or ``event`` (any other)."""
    if event.name == EXCEPTION_EVENT:
        return "exception"
    if event.name == STATE_CHANGE_EVENT:
        return "breaker"
    if event.name == FAILOVER_EVENT:
        return "failover"
    if is_retry_event(event.name, event.attributes):
        return "retry"
    return "event"


def event_summary(event: SpanEvent) -> str:
    """One line saying what a pattern event means; empty for other events."""
    a = event.attributes
    kind = event_kind(event)
    if kind == "exception":
        head = str(a.get(EXCEPTION_TYPE, "")) or "exception"
        message = str(a.get(EXCEPTION_MESSAGE, ""))
        return _cut(f"{head}: {message}" if message else head)
    if kind == "breaker":
        failures = a.get(FAILURE_COUNT)
        counted = f" after {failures} failure{'' if failures == 1 else 's'}" if isinstance(failures, int) else ""
        name = str(a.get(BREAKER_NAME, "")) or "breaker"
        return _cut(f"{name}: {a.get(STATE_FROM, '?')} → {a.get(STATE_TO, '?')}{counted}")
    if kind == "failover":
        instance = str(a.get(FAILOVER_INSTANCE, "")) or "an instance"
        reason = str(a.get(FAILOVER_REASON, a.get("error", "")))
        following = a.get(FAILOVER_NEXT)
        then = f"; trying {following}" if following not in (None, "") else ""
        return _cut(f"left {instance}" + (f": {reason}" if reason else "") + then)
    if kind == "retry":
        attempt = a.get("retry.attempt", a.get("attempt"))
        error = str(a.get("error", ""))
        said = f"attempt {attempt} failed" if attempt is not None else "an attempt failed"
        return _cut(f"{said}; retrying" + (f" ({error})" if error else ""))
    return ""


def _tooltip_attributes(event: SpanEvent) -> tuple[tuple[str, str], ...]:
    items = sorted((k, v) for k, v in event.attributes.items() if k != EXCEPTION_STACKTRACE)
    return tuple((_cut(k), _cut(typed(k, v).text)) for k, v in items[:TOOLTIP_ATTRIBUTES])


def _cut(text: str) -> str:
    return text if len(text) <= TOOLTIP_VALUE_CHARS else text[: TOOLTIP_VALUE_CHARS - 1] + "…"
