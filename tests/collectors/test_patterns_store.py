"""The pattern tables kept at ingest: idempotent, order-independent, pruned, migrated."""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from collectors.model import KIND_CLIENT, KIND_SERVER, STATUS_ERROR, Resource, Span, SpanEvent
from collectors.store.schema import metadata

NOW = time.time_ns()
RES = Resource("orders", {"service.name": "orders", "service.instance.id": "orders-7"})
PAY = Resource("payment", {"service.name": "payment"})
TID = "0af7651916cd43dd8448eb211c80319c"


def span(
    sid: str,
    parent: str = "",
    *,
    res: Resource = RES,
    kind: int = KIND_SERVER,
    attrs: dict | None = None,
    start: int = 0,
    dur: int = 5_000_000,
    status: int = 0,
    events: tuple = (),
) -> Span:
    return Span(
        TID,
        sid,
        parent,
        f"op-{sid}",
        kind,
        NOW + start,
        NOW + start + dur,
        res,
        attrs or {},
        events,
        status_code=status,
    )


def window(store):
    return NOW - 60_000_000_000, NOW + 60_000_000_000


def test_retried_batch_counts_each_breaker_call_and_request_once(store):
    batch = [
        span("a" * 16),
        span(
            "b" * 16,
            "a" * 16,
            kind=KIND_CLIENT,
            status=STATUS_ERROR,
            attrs={"circuit_breaker.name": "orders->payment", "circuit_breaker.state": "closed"},
            events=(
                SpanEvent(
                    NOW + 1,
                    "circuit_breaker.state_change",
                    {"circuit_breaker.state.from": "closed", "circuit_breaker.state.to": "open"},
                ),
            ),
        ),
        span("c" * 16, "b" * 16, res=PAY),
    ]
    store.write_spans(batch)
    store.write_spans(batch)
    start, end = window(store)
    [calls] = store.find_breaker_calls(start, end)
    assert (calls.call_count, calls.failure_count, calls.rejected_count) == (1, 1, 0)
    [t] = store.find_breaker_transitions(start, end)
    assert (t.name, t.from_state, t.to_state, t.span_id) == ("orders->payment", "closed", "open", "b" * 16)
    ops = {(o.service, o.name): o.request_count for o in store.find_operation_traffic(start, end)}
    assert ops == {("orders", "op-" + "a" * 16): 1, ("payment", "op-" + "c" * 16): 1}
    [edge] = store.find_edge_stats(start, end)
    assert (edge.parent, edge.child, edge.mode, edge.call_count) == ("orders", "payment", "sync", 1)
    [inst] = store.find_instance_activity(start, end)
    assert (inst.instance_id, inst.request_count) == ("orders-7", 1)


def test_edge_pairs_across_batches_in_either_order(store):
    store.write_spans([span("c" * 16, "b" * 16, res=PAY, dur=3_000_000)])
    store.write_spans([span("b" * 16, "", kind=KIND_CLIENT, dur=4_000_000)])
    [edge] = store.find_edge_stats(*window(store))
    assert edge.call_count == 1 and edge.duration_sum_ns == 4_000_000, "client-side latency expected"


def test_saga_row_is_the_same_whether_the_root_arrives_first_or_last(store):
    saga = {"saga.name": "order", "saga.id": "s-1"}
    root = span("1" * 16, attrs={**saga, "saga.outcome": "compensated"}, dur=50_000_000)
    steps = [
        span(
            "2" * 16,
            "1" * 16,
            start=1_000,
            attrs={**saga, "saga.step": "pay", "saga.step.index": 0, "saga.phase": "action"},
            status=STATUS_ERROR,
        )
    ]
    store.write_spans(steps)
    running = store.get_saga("s-1")
    assert running.outcome is None and running.status == "running"
    store.write_spans([root])
    done = store.get_saga("s-1")
    assert (done.outcome, done.root_span_id, done.start_ns, done.end_ns) == (
        "compensated",
        "1" * 16,
        NOW,
        NOW + 50_000_000,
    )
    assert [s.step for s in store.find_saga_steps(["s-1"])["s-1"]] == ["pay"]
    assert [s.saga_id for s in store.find_sagas(outcome="compensated").sagas] == ["s-1"]
    assert store.find_sagas(outcome="running").sagas == []


def test_saga_steps_keep_their_kind(store):
    saga = {"saga.name": "order", "saga.id": "s-k"}
    kinds = [("reserve", "compensatable"), ("capture", "pivot"), ("confirm", "retriable"), ("legacy", None)]
    store.write_spans(
        [
            span(
                f"{i + 3:016x}",
                start=i * 1_000,
                attrs={
                    **saga,
                    "saga.step": name,
                    "saga.step.index": i,
                    "saga.phase": "action",
                    **({"saga.step.kind": kind} if kind else {}),
                },
            )
            for i, (name, kind) in enumerate(kinds)
        ]
    )

    steps = store.find_saga_steps(["s-k"])["s-k"]

    assert [(s.step, s.kind) for s in steps] == kinds
    assert [s.forward_only for s in steps] == [False, True, True, False]


def failover_event(at: int, instance: object, error: object = "refused", **more: object) -> SpanEvent:
    attrs = {"discovery.instance.id": instance, "discovery.failover.reason": error}
    return SpanEvent(NOW + at, "discovery.failover", {**attrs, **more})


def test_failovers_are_kept_once_each_newest_first_and_bounded(store):
    batch = [
        span("a" * 16, kind=KIND_CLIENT, events=(failover_event(1, "inventory-1"), SpanEvent(NOW + 2, "other"))),
        span("b" * 16, kind=KIND_CLIENT, events=(failover_event(3, "inventory-2", "x" * 900), failover_event(4, 7))),
        span("c" * 16, kind=KIND_CLIENT, events=(failover_event(5, ["not", "text"], None),)),
    ]
    store.write_spans(batch)
    store.write_spans(batch)
    start, end = window(store)
    found = store.find_failovers(start, end)
    assert [(f.instance_id, f.time_ns - NOW, f.span_id) for f in found] == [
        ("", 5, "c" * 16),
        ("7", 4, "b" * 16),
        ("inventory-2", 3, "b" * 16),
        ("inventory-1", 1, "a" * 16),
    ]
    assert {f.service for f in found} == {"orders"} and {f.trace_id for f in found} == {TID}
    assert len(found[2].reason) == 500 and found[0].reason == "" and found[3].reason == "refused"
    assert [f.instance_id for f in store.find_failovers(start, end, limit=2)] == ["", "7"]
    assert store.find_failovers(NOW + 2, NOW + 3) == [found[2]]


def test_a_failover_keeps_the_service_called_and_the_instance_tried_next(store):
    call = span(
        "a" * 16,
        kind=KIND_CLIENT,
        attrs={"peer.service": "inventory"},
        events=(failover_event(1, "inventory-1", **{"discovery.next_instance.id": "inventory-2"}),),
    )
    store.write_spans([call, span("b" * 16, kind=KIND_CLIENT, events=(failover_event(2, "inventory-2"),))])
    start, end = window(store)
    found = {f.span_id: f for f in store.find_failovers(start, end)}
    assert (found["a" * 16].callee, found["a" * 16].next_instance_id) == ("inventory", "inventory-2")
    assert (found["b" * 16].callee, found["b" * 16].next_instance_id) == ("", "")


def test_pruning_every_trace_empties_the_pattern_tables(store):
    store.write_spans(
        [
            span("a" * 16, attrs={"saga.id": "s", "saga.name": "n"}),
            span("b" * 16, "a" * 16, kind=KIND_CLIENT, attrs={"circuit_breaker.name": "x"}),
            span("c" * 16, "a" * 16, kind=KIND_CLIENT, events=(failover_event(1, "i-1"),)),
        ]
    )
    store.prune(older_than_ns=time.time_ns() + 1)
    start, end = window(store)
    assert store.find_breaker_calls(start, end) == []
    assert store.find_failovers(start, end) == []
    assert store.find_operation_traffic(start, end) == []
    assert store.get_saga("s") is None


def test_migrations_create_exactly_the_schema(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], diff
    with store.engine.connect() as conn:
        assert "edge_stats" in sa.inspect(conn).get_table_names()
