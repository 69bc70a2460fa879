"""The span tree view model: every span once, orphans, skew, critical path, self time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.analysis.tree import build_trace_view, trace_operation_stats
from collectors.model import STATUS_ERROR, Resource, Span, SpanEvent, SpanLink

TRACE = "ab" * 16
MS = 1_000_000


def span(n: int, parent: int | None, start_ms: float, end_ms: float, service: str = "svc", **kw) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=f"{n:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else "",
        name=kw.pop("name", f"op{n}"),
        kind=1,
        start_ns=int(start_ms * MS),
        end_ns=int(end_ms * MS),
        resource=Resource(service),
        **kw,
    )


@st.composite
def span_forests(draw):
    """Spans with arbitrary parent pointers: real parents, missing ones, self and cycles."""
    count = draw(st.integers(1, 40))
    spans = []
    for n in range(1, count + 1):
        parent = draw(st.one_of(st.none(), st.integers(1, count + 5)))
        start = draw(st.integers(0, 1000))
        length = draw(st.integers(0, 500))
        service = draw(st.sampled_from(["a", "b", "c"]))
        spans.append(span(n, parent, start, start + length, service))
    return spans


@settings(max_examples=200, deadline=None)
@given(span_forests(), st.booleans())
def test_every_span_appears_exactly_once_and_after_its_parent(spans, adjust):
    view = build_trace_view(spans, adjust_skew=adjust)
    ids = [r.span.span_id for r in view.rows]
    assert sorted(ids) == sorted(s.span_id for s in spans)
    position = {sid: i for i, sid in enumerate(ids)}
    for r in view.rows:
        if r.parent_id:
            parent = view.rows[position[r.parent_id]]
            assert position[r.parent_id] < r.index
            assert r.depth == parent.depth + 1
        else:
            assert r.depth == 0
        assert 0 <= r.offset <= 1 and 0 <= r.width <= 1
        assert r.duration_ns == r.span.duration_ns, "skew adjustment must move spans, never stretch them"
    assert sum(r.child_count for r in view.rows) == sum(1 for r in view.rows if r.parent_id)


@settings(max_examples=100, deadline=None)
@given(span_forests())
def test_adjusted_cross_service_children_fit_inside_shorter_parents(spans):
    view = build_trace_view(spans, adjust_skew=True)
    by_id = {r.span.span_id: r for r in view.rows}
    for r in view.rows:
        parent = by_id.get(r.parent_id)
        if parent and parent.span.service != r.span.service and r.duration_ns <= parent.duration_ns:
            assert parent.start_ns <= r.start_ns and r.end_ns <= parent.end_ns


def test_orphan_span_is_kept_as_a_marked_root_with_its_children():
    view = build_trace_view([span(1, None, 0, 100), span(2, 1, 10, 20), span(3, 99, 30, 80), span(4, 3, 40, 50)])
    rows = {r.span.span_id: r for r in view.rows}
    assert rows[f"{3:016x}"].orphan and rows[f"{3:016x}"].depth == 0
    assert rows[f"{4:016x}"].depth == 1 and not rows[f"{4:016x}"].orphan
    assert view.orphan_count == 1
    assert view.root.span_id == f"{1:016x}"


def test_parent_cycle_is_cut_and_marked_orphan():
    view = build_trace_view([span(1, 2, 0, 10), span(2, 1, 1, 5)])
    assert [r.span.span_id for r in view.rows] == [f"{1:016x}", f"{2:016x}"]
    assert view.rows[0].orphan and view.rows[1].depth == 1


def test_skew_pulls_a_child_from_another_host_inside_its_parent_and_moves_its_subtree():
    spans = [span(1, None, 0, 300, "gateway"), span(2, 1, -180, 60, "orders"), span(3, 2, -170, -100, "orders")]
    view = build_trace_view(spans)
    rows = {r.span.span_id: r for r in view.rows}
    child, grandchild = rows[f"{2:016x}"], rows[f"{3:016x}"]
    assert child.skew_ns == 210 * MS  # centred: 0 + (300 - 240) / 2 - (-180)
    assert (child.start_ns, child.end_ns) == (30 * MS, 270 * MS)
    assert grandchild.skew_ns == 0 and grandchild.shift_ns == 210 * MS
    assert view.skew_count == 1
    raw = build_trace_view(spans, adjust_skew=False)
    assert raw.skew_count == 0 and raw.start_ns == -180 * MS


def test_same_service_child_outside_parent_is_not_moved():
    view = build_trace_view([span(1, None, 0, 10), span(2, 1, 5, 20)])
    assert view.rows[1].skew_ns == 0


def test_critical_path_follows_the_last_finishing_children():
    spans = [span(1, None, 0, 100), span(2, 1, 0, 30), span(3, 1, 10, 60), span(4, 1, 50, 95), span(5, 4, 60, 90)]
    view = build_trace_view(spans)
    critical = {r.span.span_id for r in view.rows if r.critical}
    assert critical == {f"{n:016x}" for n in (1, 2, 4, 5)}, "span 3 was still running when span 4 started"


def test_self_time_subtracts_the_union_of_children():
    view = build_trace_view([span(1, None, 0, 100), span(2, 1, 10, 50), span(3, 1, 30, 70), span(4, 1, 90, 130)])
    assert view.rows[0].self_ns == (100 - 60 - 10) * MS


def test_search_matches_name_service_and_attributes():
    spans = [
        span(1, None, 0, 10, name="GET /cart"),
        span(2, 1, 1, 2, attributes={"user.id": "u-42"}),
        span(3, 1, 3, 4, "payments"),
    ]
    assert [r.match for r in build_trace_view(spans, query="cart").rows] == [True, False, False]
    assert [r.match for r in build_trace_view(spans, query="user.id=u-42").rows] == [False, True, False]
    assert build_trace_view(spans, query="PAYMENTS").match_count == 1


def test_search_matches_status_messages_event_names_and_event_attributes():
    spans = [
        span(1, None, 0, 10, status_code=STATUS_ERROR, status_message="card Declined"),
        span(2, 1, 1, 2, events=(SpanEvent(MS, "circuit_breaker.state_change", {"circuit_breaker.state.to": "open"}),)),
        span(3, 1, 3, 4, events=(SpanEvent(3 * MS, "exception", {"exception.message": "processor declined"}),)),
        span(4, 1, 5, 6, attributes={"note": "nothing here"}),
    ]
    assert [r.match for r in build_trace_view(spans, query="declined").rows] == [True, False, True, False]
    assert [r.match for r in build_trace_view(spans, query="state_change").rows] == [False, True, False, False]
    assert [r.match for r in build_trace_view(spans, query="state.to=open").rows] == [False, True, False, False]
    assert build_trace_view(spans, query="refused").match_count == 0


def test_links_are_shown_both_ways():
    target = span(2, 1, 1, 2)
    source = span(3, 1, 3, 4, links=(SpanLink(TRACE, f"{2:016x}"),))
    view = build_trace_view([span(1, None, 0, 10), target, source])
    rows = {r.span.span_id: r for r in view.rows}
    assert rows[f"{2:016x}"].links_in == ((TRACE, f"{3:016x}"),)


def test_operation_stats_count_total_self_min_max_and_errors():
    spans = [
        span(1, None, 0, 100, name="root"),
        span(2, 1, 0, 10, name="q", status_code=STATUS_ERROR),
        span(3, 1, 20, 50, name="q"),
    ]
    stats = {s.operation: s for s in trace_operation_stats(build_trace_view(spans))}
    q = stats["q"]
    assert (q.count, q.total_ns, q.min_ns, q.max_ns, q.avg_ns, q.errors) == (2, 40 * MS, 10 * MS, 30 * MS, 20 * MS, 1)
    assert stats["root"].self_ns == 60 * MS


def test_empty_trace_gives_an_empty_view():
    assert build_trace_view([]).rows == []
