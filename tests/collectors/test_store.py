"""The storage suite: every SpanStore contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math

import pytest

from collectors.model import STATUS_ERROR, Resource, Span, SpanEvent, SpanLink
from collectors.otlp import decode_json
from collectors.store import MAX_QUERY_LIMIT, SpanStore, TraceQuery, WriteResult, tag_index
from collectors.store.migrate import current_revision, head_revision
from tests.conftest import otlp_json_example

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
ALL = (0, 2**62)


def res(service: str, **attrs) -> Resource:
    return Resource(service, {"service.name": service, **attrs}, "scope", "1.0", {})


FRONT, BACK, DB = res("frontend", host="a"), res("backend", host="b"), res("db")


def span(
    trace: int,
    sid: int,
    parent: int | None,
    resource: Resource,
    name: str = "op",
    *,
    start: int = 0,
    dur: int = 10 * MS,
    kind: int = 1,
    error: bool = False,
    **attrs,
) -> Span:
    return Span(
        trace_id=f"{trace:032x}",
        span_id=f"{sid:016x}",
        parent_span_id=f"{parent:016x}" if parent else "",
        name=name,
        kind=kind,
        start_ns=T0 + start,
        end_ns=T0 + start + dur,
        resource=resource,
        attributes=attrs,
        status_code=STATUS_ERROR if error else 0,
    )


def checkout(trace: int, *, error: bool = False, start: int = 0) -> list[Span]:
    """A three-service trace: frontend server -> frontend client -> backend server -> db client."""
    return [
        span(trace, 1, None, FRONT, "GET /checkout", start=start, dur=100 * MS, kind=2, route="/checkout"),
        span(trace, 2, 1, FRONT, "POST /pay", start=start + 5 * MS, dur=80 * MS, kind=3, error=error),
        span(trace, 3, 2, BACK, "pay", start=start + 6 * MS, dur=70 * MS, kind=2, error=error, amount=1999),
        span(trace, 4, 3, BACK, "SELECT", start=start + 10 * MS, dur=20 * MS, kind=3, **{"db.system": "sqlite"}),
    ]


def test_schema_is_at_the_newest_revision(store: SpanStore):
    assert current_revision(store.engine) == head_revision()


def test_write_and_read_back_every_field(store: SpanStore):
    s = Span(
        trace_id="ab" * 16,
        span_id="cd" * 8,
        parent_span_id="ef" * 8,
        name="full",
        kind=3,
        start_ns=T0,
        end_ns=T0 + 5,
        resource=Resource("svc", {"service.name": "svc", "n": [1, {"k": True}]}, "sc", "2", {"x": 1.5}),
        attributes={"s": "v", "i": 7, "f": 0.5, "b": False, "a": ["x", 2], "m": {"deep": {"er": None}}, "u": "ü ✓"},
        events=(SpanEvent(T0 + 1, "evt", {"e": 1}, 2),),
        links=(SpanLink("12" * 16, "34" * 8, {"l": "v"}, "ts=1"),),
        status_code=STATUS_ERROR,
        status_message="bad",
        trace_state="k=v",
        flags=257,
        dropped_attributes_count=1,
        dropped_events_count=2,
        dropped_links_count=3,
    )
    assert store.write_spans([s]).inserted == 1
    assert store.get_trace("ab" * 16) == [s]


def test_writes_are_idempotent_and_summaries_count_each_span_once(store: SpanStore):
    spans = checkout(1)
    assert store.write_spans(spans).inserted == 4
    again = store.write_spans(spans[:2])
    assert (again.inserted, again.duplicates) == (0, 2)
    [summary] = store.get_summaries([f"{1:032x}"])
    assert summary.span_count == 4
    assert store.count_spans() == 4
    [edge] = [e for e in store.dependencies(*ALL) if e.parent == "frontend"]
    assert edge.call_count == 1


def test_summary_tracks_root_start_duration_errors_and_services(store: SpanStore):
    store.write_spans(checkout(7, error=True))
    [s] = store.get_summaries([f"{7:032x}"])
    assert (s.root_service, s.root_name) == ("frontend", "GET /checkout")
    assert (s.start_ns, s.duration_ns) == (T0, 100 * MS)
    assert (s.span_count, s.error_count) == (4, 2)
    assert s.services == ("backend", "frontend")


def test_summary_built_across_batches_in_any_order(store: SpanStore):
    spans = checkout(9)
    store.write_spans([spans[3]])
    [s] = store.get_summaries([f"{9:032x}"])
    assert (s.root_name, s.span_count) == ("SELECT", 1)  # the earliest span stands in for the root
    store.write_spans([spans[2], spans[1]])
    store.write_spans([spans[0]])
    [s] = store.get_summaries([f"{9:032x}"])
    assert (s.root_service, s.root_name, s.span_count) == ("frontend", "GET /checkout", 4)
    assert (s.start_ns, s.end_ns) == (T0, T0 + 100 * MS)
    assert s.services == ("backend", "frontend")


def test_edges_pair_spans_across_batches_exactly_once(store: SpanStore):
    spans = checkout(3, error=True)
    for s in reversed(spans):  # children first, as batch processors usually deliver them
        store.write_spans([s])
    store.write_spans(spans)  # a retry of everything changes nothing
    edges = {(e.parent, e.child): e for e in store.dependencies(*ALL)}
    assert set(edges) == {("frontend", "backend")}
    edge = edges[("frontend", "backend")]
    assert (edge.call_count, edge.error_count) == (1, 1)
    assert edge.duration_sum_ns == 80 * MS  # the client side's view of the call


def test_dependencies_respect_the_window(store: SpanStore):
    store.write_spans(checkout(1))
    store.write_spans(checkout(2, start=3_600_000 * MS))
    assert sum(e.call_count for e in store.dependencies(*ALL)) == 2
    assert sum(e.call_count for e in store.dependencies(T0 + 1_800_000 * MS, T0 + 7_200_000 * MS)) == 1
    assert store.dependencies(0, T0 - 120_000 * MS) == []


def test_unknown_ids_give_empty_results(store: SpanStore):
    assert store.get_trace("ff" * 16) == []
    assert store.get_summaries(["ff" * 16]) == []
    assert store.find_traces(TraceQuery(*ALL, service="nobody")).traces == []


def test_services_and_operations(store: SpanStore):
    store.write_spans(checkout(1))
    assert store.list_services() == ["backend", "frontend"]
    assert store.list_operations("backend") == [("backend", "SELECT", 3), ("backend", "pay", 2)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TraceQuery(*ALL), [4, 3, 2, 1]),
        (TraceQuery(*ALL, service="backend"), [4, 3, 2, 1]),
        (TraceQuery(*ALL, service="backend", operation="pay"), [4, 3, 2, 1]),
        (TraceQuery(*ALL, service="frontend", operation="pay"), []),
        (TraceQuery(*ALL, status="error"), [4, 2]),
        (TraceQuery(*ALL, status="ok"), [3, 1]),
        (TraceQuery(*ALL, tags={"error": "true"}), [4, 2]),
        (TraceQuery(*ALL, tags={"amount": "1999"}), [4, 3, 2, 1]),
        (TraceQuery(*ALL, tags={"amount": "1999", "error": "true"}), [4, 2]),
        (TraceQuery(*ALL, tags={"host": "b"}), [4, 3, 2, 1]),
        (TraceQuery(*ALL, service="frontend", tags={"amount": "1999"}), []),
        (TraceQuery(*ALL, min_duration_ns=90 * MS), [4, 3, 2, 1]),
        (TraceQuery(*ALL, service="backend", min_duration_ns=90 * MS), []),
        (TraceQuery(*ALL, service="backend", max_duration_ns=20 * MS), [4, 3, 2, 1]),
        (TraceQuery(T0 + 1500 * MS, T0 + 3500 * MS), [3, 2]),
        (TraceQuery(*ALL, limit=2), [4, 3]),
    ],
    ids=lambda v: "" if isinstance(v, list) else None,
)
def test_find_traces(store: SpanStore, query: TraceQuery, expected: list[int]):
    for i in range(1, 5):
        store.write_spans(checkout(i, error=i % 2 == 0, start=i * 1000 * MS))
    result = store.find_traces(query)
    assert [int(t.trace_id, 16) for t in result.traces] == expected
    assert result.truncated == (query.limit == 2)


def test_search_limit_is_capped(store: SpanStore):
    store.write_spans([span(i, 1, None, FRONT, start=i) for i in range(1, 30)])
    assert len(store.find_traces(TraceQuery(*ALL, limit=10**9)).traces) == 29
    assert MAX_QUERY_LIMIT <= 1500


def test_prune_by_age_removes_whole_traces_received_earlier(store: SpanStore):
    store.write_spans(checkout(1), received_ns=1_000)
    store.write_spans(checkout(2), received_ns=2_000)
    result = store.prune(older_than_ns=1_500)
    assert (result.traces, result.spans) == (1, 4)
    assert store.get_trace(f"{1:032x}") == []
    assert len(store.get_trace(f"{2:032x}")) == 4
    assert [int(t.trace_id, 16) for t in store.find_traces(TraceQuery(*ALL, service="backend")).traces] == [2]


def test_prune_caps_the_span_count_oldest_received_first(store: SpanStore):
    for i in range(1, 6):
        store.write_spans(checkout(i), received_ns=i * 1000)
    result = store.prune(max_spans=10, chunk=2)
    assert result.traces == 3
    assert store.count_spans() == 8
    assert [int(t.trace_id, 16) for t in store.find_traces(TraceQuery(*ALL)).traces] == [5, 4]


def test_old_timestamps_are_kept_retention_counts_from_receipt(store: SpanStore):
    batch = decode_json(otlp_json_example())
    store.write_spans(batch.spans)
    store.prune(older_than_ns=0, max_spans=100)
    assert len(store.get_trace("5b8efff798038103d269b633813fc60c")) == 1


def test_reopening_keeps_data(store: SpanStore, settings):
    store.write_spans(checkout(1))
    again = SpanStore.from_url(settings.store_url)
    try:
        assert len(again.get_trace(f"{1:032x}")) == 4
    finally:
        again.close()


def test_resources_differing_only_in_service_name_stay_apart(store: SpanStore):
    a = Resource("alpha", {"host": "h"}, "scope", "1", {})
    b = Resource("beta", {"host": "h"}, "scope", "1", {})
    store.write_spans([span(1, 1, None, a)])
    store.write_spans([span(1, 2, 1, b)])
    assert [s.service for s in store.get_trace(f"{1:032x}")] == ["alpha", "beta"]


def test_tags_are_searchable_from_another_process_once_the_write_returns(store: SpanStore, settings):
    store.write_spans(checkout(5))
    other = SpanStore.from_url(settings.store_url)  # as a second gunicorn worker would
    try:
        found = other.find_traces(TraceQuery(*ALL, tags={"amount": "1999"}))
        assert [int(t.trace_id, 16) for t in found.traces] == [5]
    finally:
        other.close()


def test_fragments_of_one_trace_with_the_same_start_are_both_searchable(store: SpanStore):
    first = span(9, 1, None, FRONT, cart="blue")
    second = span(9, 2, 1, BACK, cart="red", retries=2)
    assert first.start_ns == second.start_ns
    store.write_spans([first])
    store.write_spans([second])
    for tags in ({"cart": "blue"}, {"cart": "red"}, {"retries": "2"}, {"cart": "red", "host": "b"}):
        found = store.find_traces(TraceQuery(*ALL, tags=tags))
        assert [int(t.trace_id, 16) for t in found.traces] == [9], tags
    for tags in ({"cart": "green"}, {"retries": "3"}, {"cart": "blue", "retries": "3"}):
        assert store.find_traces(TraceQuery(*ALL, tags=tags)).traces == [], tags


def test_typed_values_are_searched_as_they_read(store: SpanStore):
    attributes = {"ok": True, "n": 3, "ratio": 0.5, "whole": 2.0, "list": ["x"], "long": "x" * 300}
    store.write_spans([span(10, 1, None, FRONT, **attributes)])
    for tags in ({"ok": "true"}, {"n": "3"}, {"ratio": "0.5"}, {"whole": "2"}):
        assert len(store.find_traces(TraceQuery(*ALL, tags=tags)).traces) == 1, tags
    for tags in ({"ok": "1"}, {"n": "true"}, {"ok": "false"}, {"list": "x"}):
        assert store.find_traces(TraceQuery(*ALL, tags=tags)).traces == [], tags


def test_true_and_one_on_spans_of_one_trace_are_each_searchable(store: SpanStore):
    # Python holds True == 1 == 1.0 (and False == 0): the index must keep every reading.
    store.write_spans(
        [
            span(11, 1, None, FRONT, flag=True, zero=0, half=1.0),
            span(11, 2, 1, FRONT, flag=1, zero=False, half=True),
            span(12, 1, None, FRONT, flag=1),
        ]
    )
    found = {
        tag: {t.trace_id for t in store.find_traces(TraceQuery(*ALL, tags=dict([tag]))).traces}
        for tag in [("flag", "true"), ("flag", "1"), ("zero", "0"), ("zero", "false"), ("half", "1"), ("half", "true")]
    }
    one, two = f"{11:032x}", f"{12:032x}"
    assert found == {
        ("flag", "true"): {one},
        ("flag", "1"): {one, two},
        ("zero", "0"): {one},
        ("zero", "false"): {one},
        ("half", "1"): {one},
        ("half", "true"): {one},
    }
    assert store.find_traces(TraceQuery(*ALL, tags={"flag": "false"})).traces == []


def test_values_stay_searchable_when_the_seed_cache_is_full(store: SpanStore, monkeypatch):
    monkeypatch.setattr(tag_index, "_SEEDS_LIMIT", 1)
    monkeypatch.setattr(tag_index, "_seeds", {})
    for trace in range(20, 26):
        store.write_spans([span(trace, 1, None, FRONT, user=f"u{trace}", n=trace * 7, region="eu")])
    for trace in range(20, 26):
        for tags in ({"user": f"u{trace}"}, {"n": str(trace * 7)}):
            assert [t.trace_id for t in store.find_traces(TraceQuery(*ALL, tags=tags)).traces] == [f"{trace:032x}"]
    assert len(store.find_traces(TraceQuery(*ALL, tags={"region": "eu"})).traces) == 6


def test_non_finite_doubles_and_empty_values_read_back_as_written(store: SpanStore):
    attributes = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "empty": None, "text": "null"}
    store.write_spans([span(13, 1, None, FRONT, **attributes)])
    [stored] = store.get_trace(f"{13:032x}")
    assert math.isnan(stored.attributes["nan"])
    assert {k: v for k, v in stored.attributes.items() if k != "nan"} == {
        "inf": math.inf,
        "ninf": -math.inf,
        "empty": None,
        "text": "null",
    }


@pytest.mark.parametrize("producer_first", [True, False])
def test_async_edge_counted_once_whichever_of_producer_and_consumer_arrives_first(store: SpanStore, producer_first):
    orders, notifications = res("orders"), res("notifications")
    producer = span(3, 1, None, orders, "publish OrderPlaced", kind=4)
    consumer = Span(
        trace_id=f"{4:032x}",
        span_id=f"{2:016x}",
        parent_span_id="",
        name="process OrderPlaced",
        kind=5,
        start_ns=T0 + 50 * MS,
        end_ns=T0 + 62 * MS,
        resource=notifications,
        links=(SpanLink(producer.trace_id, producer.span_id),),
        status_code=STATUS_ERROR,
    )
    first, second = ([producer], [consumer]) if producer_first else ([consumer], [producer])
    store.write_spans(first)
    assert ("orders", "notifications") not in {(e.parent, e.child) for e in store.dependencies(*ALL)}
    store.write_spans(second)
    store.write_spans(second)  # a retry pairs nothing twice
    store.write_spans([producer, consumer])
    edges = {(e.parent, e.child): e for e in store.dependencies(*ALL)}
    edge = edges[("orders", "notifications")]
    assert (edge.call_count, edge.error_count, edge.duration_max_ns) == (1, 1, 12 * MS)
    stats = {(e.parent, e.child): e for e in store.find_edge_stats(*ALL)}
    assert (stats[("orders", "notifications")].mode, stats[("orders", "notifications")].call_count) == ("async", 1)


def test_retention_forgets_consumers_still_waiting_for_their_producer(store: SpanStore):
    import sqlalchemy as sa

    from collectors.store.schema import unpaired_consumers

    waiting = span(5, 1, None, res("notifications"), "process", kind=5)
    waiting.links = (SpanLink(f"{6:032x}", f"{7:016x}"),)
    store.write_spans([waiting])
    count = sa.select(sa.func.count()).select_from(unpaired_consumers)
    with store.engine.connect() as conn:
        assert conn.execute(count).scalar() == 1
    store.prune(max_spans=0)
    with store.engine.connect() as conn:
        assert conn.execute(count).scalar() == 0


def test_a_retry_that_adds_new_spans_indexes_only_the_new_ones(store: SpanStore):
    spans = checkout(8)
    store.write_spans(spans[:2])
    result = store.write_spans(spans)  # half retried, half new
    assert (result.inserted, result.duplicates) == (2, 2)
    [summary] = store.get_summaries([f"{8:032x}"])
    assert summary.span_count == 4
    found = store.find_traces(TraceQuery(*ALL, tags={"amount": "1999"}))
    assert [int(t.trace_id, 16) for t in found.traces] == [8]


def test_a_retried_batch_of_many_traces_is_recognised_whole(store: SpanStore):
    batch = [span(1000 + i, 1, None, FRONT, start=i) for i in range(2000)]  # more traces than one IN list holds
    assert store.write_spans(batch) == WriteResult(2000, 0)
    assert store.write_spans(batch) == WriteResult(0, 2000)
    assert store.count_spans() == 2000


def test_ids_of_a_rolled_back_transaction_are_not_remembered(store: SpanStore, database_url: str) -> None:
    """A batch whose new resource and key cannot be committed leaves nothing behind that a
    later batch would point at: the next batch with the same resource reads back whole."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON attribute_keys WHEN NEW.key = 'boom' "
                "BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN "
                "IF NEW.key = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON attribute_keys FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
            )
    engine.dispose()
    fresh = res("fresh-service", host="new")
    with pytest.raises(Exception, match="boom refused"):
        store.write_spans([span(70, 1, None, fresh, boom=1)])
    store.write_spans([span(71, 1, None, fresh, calm=1)])
    [stored] = store.get_trace(f"{71:032x}")
    assert stored.service == "fresh-service"
    assert stored.resource.attributes == {"service.name": "fresh-service", "host": "new"}
