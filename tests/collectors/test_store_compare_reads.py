"""What the compare page reads: a trace's outline, and the previous trace of an operation
(same root service and name, started just before)."""

from __future__ import annotations

from collectors.store import SpanStore
from tests.collectors.test_store import BACK, FRONT, MS, checkout, span


def test_outline_has_each_spans_place_timing_and_status(store: SpanStore):
    store.write_spans(checkout(1, error=True))
    whole = store.get_trace(f"{1:032x}")
    outline = store.get_trace_outline(f"{1:032x}")
    assert [(o.span_id, o.parent_span_id, o.service, o.name, o.start_ns, o.end_ns, o.is_error) for o in outline] == [
        (s.span_id, s.parent_span_id, s.service, s.name, s.start_ns, s.end_ns, s.is_error) for s in whole
    ]
    assert [o.duration_ns for o in outline] == [100 * MS, 80 * MS, 70 * MS, 20 * MS]
    assert store.get_trace_outline(f"{2:032x}") == []


def test_previous_trace_is_the_latest_earlier_one_with_the_same_root(store: SpanStore):
    store.write_spans(checkout(1, start=0))
    store.write_spans(checkout(2, start=10 * MS))
    store.write_spans([span(3, 1, None, FRONT, "GET /other", start=20 * MS)])  # another operation
    store.write_spans([span(4, 1, None, BACK, "GET /checkout", start=25 * MS)])  # another service
    store.write_spans(checkout(5, start=30 * MS))
    store.write_spans(checkout(6, start=40 * MS))  # later: never a previous one of 5
    previous = store.previous_trace(f"{5:032x}")
    assert previous is not None and previous.trace_id == f"{2:032x}"
    assert store.previous_trace(f"{2:032x}").trace_id == f"{1:032x}"
    assert store.previous_trace(f"{1:032x}") is None
    assert store.previous_trace(f"{3:032x}") is None
    assert store.previous_trace(f"{99:032x}") is None


def test_traces_starting_together_are_ordered_by_id(store: SpanStore):
    store.write_spans(checkout(7, start=0))
    store.write_spans(checkout(8, start=0))
    assert store.previous_trace(f"{8:032x}").trace_id == f"{7:032x}"
    assert store.previous_trace(f"{7:032x}") is None
