"""A trace's events in one list: time order on the trace's axis (after the clock-skew shift
of their spans), the kinds they are picked by, and their text, cut and without stack traces."""

from __future__ import annotations

from app.analysis.trace_events import EVENT_KINDS, VALUE_CHARS, kind_counts, trace_events
from app.analysis.tree import build_trace_view
from collectors.model import Resource, Span, SpanEvent

MS = 1_000_000
TRACE = "ab" * 16


def span(n: int, parent: int | None, name: str, start_ms: float, end_ms: float, *events, service="gateway", **attrs):
    return Span(
        TRACE,
        f"{n:016x}",
        f"{parent:016x}" if parent else "",
        name,
        2,
        int(start_ms * MS),
        int(end_ms * MS),
        Resource(service),
        attributes=attrs,
        events=tuple(events),
    )


def at(ms: float, name: str, **attrs) -> SpanEvent:
    return SpanEvent(int(ms * MS), name, attrs)


def listed(spans: list[Span], **options) -> list[tuple[str, float, str]]:
    """(event name, milliseconds from the trace's start, span name) in the list's order."""
    return [(e.name, e.at_ns / MS, e.row.span.name) for e in trace_events(build_trace_view(spans, **options))]


def test_events_of_every_span_are_merged_earliest_first_from_the_trace_start():
    spans = [
        span(1, None, "root", 100, 200, at(190, "root late"), at(105, "root early")),
        span(2, 1, "child", 110, 150, at(120, "child"), at(140, "child again")),
        span(3, 1, "sibling", 150, 180, at(160, "sibling")),
    ]
    assert listed(spans) == [
        ("root early", 5.0, "root"),
        ("child", 20.0, "child"),
        ("child again", 40.0, "child"),
        ("sibling", 60.0, "sibling"),
        ("root late", 90.0, "root"),
    ]


def test_events_at_the_same_time_keep_the_waterfall_order_then_their_own():
    spans = [
        span(1, None, "root", 0, 100, at(50, "root b"), at(50, "root a")),
        span(2, 1, "child", 10, 90, at(50, "child")),
    ]
    assert [name for name, _, _ in listed(spans)] == ["root b", "root a", "child"]


def test_an_event_moves_with_its_span_when_clock_skew_is_adjusted_and_not_otherwise():
    """orders' clock runs 220 ms behind: its server span starts before the call that made it."""
    spans = [
        span(1, None, "root", 0, 100, at(40, "root mid")),
        span(2, 1, "call orders", 10, 90),
        span(3, 2, "serve", -200, -140, at(-190, "orders early"), service="orders"),
    ]
    view = build_trace_view(spans)
    assert view.rows[2].shift_ns == 220 * MS, "the waterfall moves the server span inside its call"
    assert listed(spans) == [("orders early", 30.0, "serve"), ("root mid", 40.0, "root")]
    assert listed(spans, adjust_skew=False) == [("orders early", 10.0, "serve"), ("root mid", 240.0, "root")]


def test_pattern_events_exceptions_and_compensation_have_their_kinds():
    spans = [
        span(
            1,
            None,
            "saga order",
            0,
            100,
            at(1, "exception", **{"exception.type": "Boom", "exception.message": "it broke"}),
            at(2, "circuit_breaker.state_change", **{"circuit_breaker.state.from": "closed"}),
            at(3, "discovery.failover", **{"discovery.instance.id": "inventory-1"}),
            at(4, "saga.step.retry", attempt=2),
            at(5, "cache.miss", key="k"),
            at(6, "saga.pending", **{"saga.phase": "compensation"}),
            at(7, "saga.compensation.skipped"),
        ),
        span(2, 1, "saga order compensation pay", 10, 20, at(11, "refund sent"), **{"saga.phase": "compensation"}),
        span(3, 1, "saga order action pay", 30, 40, at(31, "charged"), **{"saga.phase": "action"}),
    ]
    kinds = {e.name: e.kinds for e in trace_events(build_trace_view(spans))}
    assert kinds == {
        "exception": ("exception",),
        "circuit_breaker.state_change": ("breaker",),
        "discovery.failover": ("failover",),
        "saga.step.retry": ("retry",),
        "cache.miss": ("event",),
        "saga.pending": ("compensation",),
        "saga.compensation.skipped": ("compensation",),
        "refund sent": ("compensation",),
        "charged": ("event",),
    }
    counts = kind_counts(trace_events(build_trace_view(spans)))
    assert counts == {"exception": 1, "breaker": 1, "failover": 1, "retry": 1, "compensation": 3, "event": 2}


def test_a_retry_during_compensation_is_both_kinds_and_counted_in_each():
    spans = [span(1, None, "compensation", 0, 10, at(1, "saga.compensation.retry", attempt=1, error="busy"))]
    (event,) = trace_events(build_trace_view(spans))
    assert event.kinds == ("retry", "compensation")
    assert kind_counts([event]) == {k: int(k in ("retry", "compensation")) for k in EVENT_KINDS}


def test_a_trace_without_events_lists_none_and_counts_zero_of_every_kind():
    events = trace_events(build_trace_view([span(1, None, "quiet", 0, 10)]))
    assert events == [] and kind_counts(events) == dict.fromkeys(EVENT_KINDS, 0)


def test_attributes_are_sorted_cut_and_the_stack_trace_is_left_to_the_span_panel():
    long = "x" * (VALUE_CHARS + 50)
    exception = at(
        1,
        "exception",
        **{"exception.type": "Boom", "exception.stacktrace": "Traceback ...", "zeta": long, "alpha": 3},
    )
    (event,) = trace_events(build_trace_view([span(1, None, "root", 0, 10, exception)]))
    assert [key for key, _ in event.attributes] == ["alpha", "exception.type", "zeta"]
    assert dict(event.attributes)["alpha"] == "3"
    cut = dict(event.attributes)["zeta"]
    assert len(cut) == VALUE_CHARS and cut.endswith("…")
    assert event.stacktrace and event.summary == "Boom"
    assert event.span_id == f"{1:016x}"


def test_text_stays_as_sent_for_the_template_to_escape():
    hostile = at(1, "<img src=x onerror=alert(1)>", note="<script>alert(1)</script>")
    (event,) = trace_events(build_trace_view([span(1, None, "root", 0, 10, hostile)]))
    assert event.name == "<img src=x onerror=alert(1)>"
    assert event.attributes == (("note", "<script>alert(1)</script>"),)
