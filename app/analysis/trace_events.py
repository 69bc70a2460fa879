"""Every span event of one trace in time order: the trace page's "Events" tab.

Each entry says when the event happened (from the trace's start, after the same clock-skew
shift as its span), which span it belongs to, and what kinds it is, so that exceptions and
the events the patterns emit (breaker state changes, fail-overs, retries, compensation)
can be picked out. Pure functions over a :class:`~app.analysis.tree.TraceView`; the text
is plain and the template escapes it like any span data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from app.analysis.badges import PHASE_COMPENSATION
from app.analysis.markers import event_kind, event_summary
from app.analysis.tree import Row, TraceView
from app.analysis.values import EXCEPTION_STACKTRACE, typed
from collectors.model import SpanEvent

EVENT_KINDS = {
    "exception": "Exceptions",
    "breaker": "Breaker state changes",
    "failover": "Fail-overs",
    "retry": "Retries",
    "compensation": "Compensation",
    "event": "Other events",
}
"""The kinds an event can be picked by, with the label of each."""
SAGA_PHASE = "saga.phase"
VALUE_CHARS = 300
"""Characters of an attribute value the list shows; the span's panel shows it whole."""


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One span event placed on the trace's time axis."""

    at_ns: int
    row: Row
    name: str
    kinds: tuple[str, ...]
    summary: str
    attributes: tuple[tuple[str, str], ...]
    stacktrace: bool

    @property
    def span_id(self) -> str:
        """The id of the span the event belongs to."""
        return self.row.span_id


def trace_events(view: TraceView) -> list[TraceEvent]:
    """Every event of every span, earliest first (ties in row order, then event order)."""
    out = []
    for row in view.rows:
        for event in row.span.events:
            out.append(
                TraceEvent(
                    at_ns=event.time_ns + row.shift_ns - view.start_ns,
                    row=row,
                    name=event.name,
                    kinds=event_kinds(row, event),
                    summary=event_summary(event),
                    attributes=tuple(
                        (key, _cut(typed(key, value).text))
                        for key, value in sorted(event.attributes.items())
                        if key != EXCEPTION_STACKTRACE
                    ),
                    stacktrace=EXCEPTION_STACKTRACE in event.attributes,
                )
            )
    out.sort(key=lambda e: (e.at_ns, e.row.index))
    return out


def event_kinds(row: Row, event: SpanEvent) -> tuple[str, ...]:
    """The kinds of one event: its marker kind (``exception``, ``breaker``, ``failover``,
    ``retry`` or ``event``), and ``compensation`` when it belongs to a saga's compensation
    (its span or the event says ``saga.phase = compensation``, or its name says so)."""
    kind = event_kind(event)
    compensating = (
        row.span.attributes.get(SAGA_PHASE) == PHASE_COMPENSATION
        or event.attributes.get(SAGA_PHASE) == PHASE_COMPENSATION
        or "compensation" in event.name.lower()
    )
    if compensating:
        return ("compensation",) if kind == "event" else (kind, "compensation")
    return (kind,)


def kind_counts(events: list[TraceEvent]) -> dict[str, int]:
    """How many events are of each kind, for every kind in :data:`EVENT_KINDS`."""
    counts = Counter(k for e in events for k in e.kinds)
    return {kind: counts.get(kind, 0) for kind in EVENT_KINDS}


def _cut(text: str) -> str:
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"
