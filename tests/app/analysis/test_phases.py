"""An experiment's affected services: the services its traces touched, entry first."""

from __future__ import annotations

from app.analysis.phases import affected_services
from collectors.model import KIND_CLIENT, KIND_PRODUCER, KIND_SERVER, Resource, Span


def span(trace: int, span_id: int, parent: int, service: str, start: int) -> Span:
    return Span(
        trace_id=f"{trace:032x}",
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent else "",
        name="op",
        kind=KIND_SERVER if parent == 0 else KIND_CLIENT,
        start_ns=start,
        end_ns=start + 10,
        resource=Resource(service),
        attributes={},
    )


def declined_order(trace: int) -> list[Span]:
    """gateway -> orders -> inventory (prices, first), then orders -> payment (declined)."""
    return [
        span(trace, 1, 0, "gateway", 0),
        span(trace, 2, 1, "gateway", 1),
        span(trace, 3, 2, "orders", 2),
        span(trace, 4, 3, "orders", 3),
        span(trace, 5, 4, "inventory", 4),
        span(trace, 6, 3, "orders", 10),
        span(trace, 7, 6, "payment", 11),
    ]


def test_services_are_ordered_by_hops_from_the_entry_then_changed_first_then_first_reached():
    traces = {"a": declined_order(1), "b": declined_order(2)}
    assert affected_services(traces) == ["gateway", "orders", "inventory", "payment"]
    assert affected_services(traces, {"payment"}) == ["gateway", "orders", "payment", "inventory"]


def test_a_service_counts_at_its_nearest_hop_and_a_changed_service_no_trace_touched_comes_last():
    # In one trace inventory is called by the gateway directly (one hop), in another through
    # orders (two hops): it is one hop away. A span whose parent is missing starts a chain.
    direct = [span(3, 1, 0, "gateway", 50), span(3, 2, 1, "inventory", 51)]
    orphan = [span(4, 9, 8, "shipping", -5)]
    traces = {"a": declined_order(1), "b": direct, "c": orphan}
    assert affected_services(traces, {"notifications"}) == [
        "shipping",
        "gateway",
        "orders",
        "inventory",
        "payment",
        "notifications",
    ]
    assert affected_services({}, {"payment"}) == ["payment"]


def test_a_parent_cycle_does_not_loop():
    looped = [span(5, 1, 2, "gateway", 0), span(5, 2, 1, "orders", 1)]
    assert sorted(affected_services({"a": looped})) == ["gateway", "orders"]


def test_a_consumers_trace_counts_one_hop_past_the_producer():
    placed = declined_order(1)[:5]
    producer = span(1, 8, 3, "orders", 20)
    producer.kind = KIND_PRODUCER
    consumer = [span(9, 1, 0, "notifications", 30), span(9, 2, 1, "notifications", 31)]
    traces = {"a": [*placed, producer]}
    assert affected_services(traces, {"notifications"}, {"c": consumer}) == [
        "gateway",
        "orders",
        "notifications",
        "inventory",
    ]
    assert affected_services(traces, (), {"c": consumer}) == ["gateway", "orders", "inventory", "notifications"]


def test_a_service_met_only_through_a_discovery_lookup_follows_the_services_called():
    traces = {"a": declined_order(1)}
    lookup = span(1, 20, 2, "gateway", 1)
    lookup.attributes = {"discovery.service": "orders"}
    traces["a"] = [*traces["a"], lookup, span(1, 21, 20, "registry", 1)]
    assert affected_services(traces, {"payment"}) == ["gateway", "orders", "payment", "inventory", "registry"]


def test_a_callee_whose_span_is_missing_counts_from_the_callers_peer_service():
    # Orders' call to inventory timed out; inventory's span has not arrived (or never will).
    waited = [span(1, 1, 0, "gateway", 0), span(1, 2, 1, "gateway", 1), span(1, 3, 2, "orders", 2)]
    waited.append(span(1, 4, 3, "orders", 3))
    waited[-1].attributes = {"peer.service": "inventory"}
    lookup = span(1, 5, 4, "orders", 3)
    lookup.attributes = {"discovery.service": "inventory", "peer.service": "registry"}
    traces = {"a": [*waited, lookup]}
    assert affected_services(traces, {"inventory", "gateway"}) == ["gateway", "orders", "inventory", "registry"]
