"""Event markers: placed on the trace's axis, summarized for the patterns, capped per bar."""

from __future__ import annotations

from app.analysis.markers import MARKERS_PER_SPAN, TOOLTIP_ATTRIBUTES, TOOLTIP_VALUE_CHARS, event_markers
from app.analysis.tree import build_trace_view
from collectors.model import Resource, Span, SpanEvent

MS = 1_000_000


def trace(events: tuple, *, child_start_ms: float = 10, child_service: str = "orders") -> list[Span]:
    root = Span("ab" * 16, f"{1:016x}", "", "root", 2, 0, 100 * MS, Resource("gateway"))
    child = Span(
        "ab" * 16,
        f"{2:016x}",
        root.span_id,
        "call",
        3,
        int(child_start_ms * MS),
        int((child_start_ms + 40) * MS),
        Resource(child_service),
        events=events,
    )
    return [root, child]


def markers_of(spans: list[Span]):
    view = build_trace_view(spans)
    return event_markers(view.rows[1], view.start_ns, view.duration_ns)


def test_each_pattern_event_is_a_marker_of_its_kind_at_its_time_with_a_summary():
    events = (
        SpanEvent(
            12 * MS,
            "discovery.failover",
            {
                "discovery.instance.id": "inventory-1",
                "discovery.failover.reason": "connection refused",
                "discovery.next_instance.id": "inventory-2",
            },
        ),
        SpanEvent(20 * MS, "exception", {"exception.type": "Boom", "exception.message": "it broke"}),
        SpanEvent(
            25 * MS,
            "circuit_breaker.state_change",
            {
                "circuit_breaker.name": "orders->payment",
                "circuit_breaker.state.from": "closed",
                "circuit_breaker.state.to": "open",
                "circuit_breaker.failure_count": 5,
            },
        ),
        SpanEvent(30 * MS, "saga.compensation.retry", {"attempt": 1, "error": "busy"}),
        SpanEvent(35 * MS, "cache.miss", {"key": "k"}),
    )
    markers, left_off = markers_of(trace(events))
    assert left_off == 0
    assert [m.kind for m in markers] == ["failover", "exception", "breaker", "retry", "event"]
    assert [m.at for m in markers] == [0.12, 0.2, 0.25, 0.3, 0.35]
    assert [m.offset_ns for m in markers] == [2 * MS, 10 * MS, 15 * MS, 20 * MS, 25 * MS]
    assert markers[0].summary == "left inventory-1: connection refused; trying inventory-2"
    assert markers[1].summary == "Boom: it broke"
    assert markers[2].summary == "orders->payment: closed → open after 5 failures"
    assert markers[3].summary == "attempt 1 failed; retrying (busy)"
    assert markers[4].summary == "" and markers[4].attributes == (("key", "k"),)


def test_markers_move_with_their_span_when_clock_skew_is_adjusted():
    # The child starts 50 ms before its parent (another host's clock): it is moved inside.
    event = SpanEvent(-45 * MS, "exception", {})
    spans = trace((event,), child_start_ms=-50)
    view = build_trace_view(spans)
    row = view.rows[1]
    assert row.skew_ns > 0
    (marker,), _ = event_markers(row, view.start_ns, view.duration_ns)
    assert marker.at == (row.start_ns + 5 * MS - view.start_ns) / view.duration_ns
    assert marker.offset_ns == 5 * MS


def test_a_bar_marks_at_most_the_cap_keeping_pattern_events_first():
    noise = tuple(SpanEvent((10 + i * 0.1) * MS, "log", {}) for i in range(MARKERS_PER_SPAN + 10))
    important = (SpanEvent(49 * MS, "exception", {"exception.type": "Boom"}),)
    markers, left_off = markers_of(trace(noise + important))
    assert len(markers) == MARKERS_PER_SPAN and left_off == 11
    assert markers[-1].kind == "exception", "the exception is kept though it came last"
    assert [m.at for m in markers] == sorted(m.at for m in markers)


def test_tooltip_text_leaves_out_stack_traces_and_cuts_long_values():
    event = SpanEvent(
        20 * MS,
        "exception",
        {"exception.type": "Boom", "exception.stacktrace": "Traceback ...", "exception.message": "x" * 1000},
    )
    (marker,), _ = markers_of(trace((event,)))
    keys = [k for k, _ in marker.attributes]
    assert keys == ["exception.message", "exception.type"]
    assert len(marker.attributes[0][1]) == TOOLTIP_VALUE_CHARS and marker.attributes[0][1].endswith("…")
    assert len(marker.summary) == TOOLTIP_VALUE_CHARS


def test_events_outside_the_trace_are_pinned_to_its_edges():
    events = (SpanEvent(-500 * MS, "early", {}), SpanEvent(900 * MS, "late", {}))
    markers, _ = markers_of(trace(events))
    assert [m.at for m in markers] == [0.0, 1.0]


def test_any_event_noting_a_retried_attempt_is_a_retry_marker():
    events = (
        SpanEvent(12 * MS, "saga.step.retry", {"retry.attempt": 1, "error": "503"}),
        SpanEvent(
            14 * MS,
            "event_sourcing.version_conflict",
            {"event_sourcing.version.expected": 3, "event_sourcing.version.actual": 4, "retry.attempt": 1},
        ),
        SpanEvent(16 * MS, "discovery.failover", {"discovery.instance.id": "a-1", "error": "refused"}),
    )
    markers, _ = markers_of(trace(events))
    assert [m.kind for m in markers] == ["retry", "retry", "failover"]
    assert markers[0].summary == "attempt 1 failed; retrying (503)"
    assert markers[2].summary == "left a-1: refused", "an event without the reason attribute still reads"


def test_markers_at_nearly_the_same_time_are_nudged_apart_in_time_order():
    events = (
        SpanEvent(int(30.2 * MS), "exception", {}),
        SpanEvent(30 * MS, "circuit_breaker.state_change", {}),
        SpanEvent(int(30.4 * MS), "exception", {}),
        SpanEvent(40 * MS, "exception", {}),
    )
    markers, _ = markers_of(trace(events))
    assert [m.kind for m in markers] == ["breaker", "exception", "exception", "exception"]
    assert [m.nudge for m in markers] == [0, 1, 2, 0]


def test_long_names_are_cut_and_attributes_past_the_tooltips_share_are_counted():
    attributes = {f"k{i:02d}": i for i in range(TOOLTIP_ATTRIBUTES + 3)}
    (marker,), _ = markers_of(trace((SpanEvent(20 * MS, "n" * 5000, {**attributes, "exception.stacktrace": "x"}),)))
    assert len(marker.name) == TOOLTIP_VALUE_CHARS
    assert len(marker.attributes) == TOOLTIP_ATTRIBUTES and marker.attributes_left_off == 3
