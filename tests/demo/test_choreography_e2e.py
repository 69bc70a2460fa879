"""The choreographed chain on the real demo: OrderPlaced -> shipping prepares the parcel
and publishes ShipmentPrepared -> notifications tells the customer, each reaction a
CONSUMER span in a trace of its own linked to the PRODUCER span that caused it, each
message processed once; and the order's own trace, which holds REST, gRPC (the gateway's
check of the customer) and the event side by side. Read back through Spyglass's HTTP API."""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from demo_services.launcher import Demo
from tests.demo.helpers import TEST_ENV, Jaeger, describe, log_events, parent_id, service_of, tag
from tests.helpers import group_members, wait_until

pytestmark = [pytest.mark.demo, pytest.mark.timeout(240)]
ORDER = {"user_id": 1, "items": [{"product_id": 4, "quantity": 1}]}
CONVERSATION = "messaging.message.conversation_id"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo; every process stopped at the end."""
    with Demo(data_dir=tmp_path_factory.mktemp("choreography"), env=TEST_ENV, out=io.StringIO()) as running:
        yield running
        groups = list(running.pids().values())
    assert {group: group_members(group) for group in groups} == dict.fromkeys(groups, [])


@pytest.fixture(scope="module")
def jaeger(demo: Demo) -> Jaeger:
    """Read traces from the demo's Spyglass."""
    return Jaeger(demo.ui_url)


def chain_spans(jaeger: Jaeger, order_id: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every messaging span of the order's conversation, by (service, span name), each
    with its trace id; found with one tag search per service."""
    found: dict[str, dict[str, Any]] = {}
    for service in ("orders", "shipping", "notifications"):
        for summary in jaeger.find(service, tags={CONVERSATION: order_id}):
            trace = jaeger.trace(summary["traceID"])
            for span in trace["spans"] if trace else []:
                if tag(span, CONVERSATION) == order_id:
                    found[span["spanID"]] = {**span, "service": service_of(trace, span)}
    by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for span in found.values():
        by_name.setdefault((span["service"], span["operationName"]), []).append(span)
    return by_name


def links(span: dict[str, Any]) -> list[tuple[str, str]]:
    """The (trace id, span id) of the span's FOLLOWS_FROM references (its links)."""
    return [(r["traceID"], r["spanID"]) for r in span["references"] if r["refType"] == "FOLLOWS_FROM"]


WANTED = [
    ("orders", "publish OrderPlaced"),
    ("shipping", "process OrderPlaced"),
    ("shipping", "publish ShipmentPrepared"),
    ("notifications", "process OrderPlaced"),
    ("notifications", "process ShipmentPrepared"),
]


def test_an_order_sets_off_a_chain_of_reactions_each_linked_to_its_cause(demo: Demo, jaeger: Jaeger) -> None:
    session = requests.Session()
    session.headers["Authorization"] = demo.log_in("ada").header
    answer = session.post(f"{demo.gateway_url}/api/orders", json=ORDER, timeout=30)
    assert answer.status_code == 201, answer.text
    order_id = answer.json()["order_id"]

    spans = wait_until(
        lambda: (found := chain_spans(jaeger, order_id)) and all(found.get(w) for w in WANTED) and found,
        interval=0.3,
        message=describe(demo, f"the choreographed chain of order {order_id}"),
    )
    # Each message was processed once by each of its consumers.
    assert {w: len(spans[w]) for w in WANTED} == dict.fromkeys(WANTED, 1)
    [placed] = spans[("orders", "publish OrderPlaced")]
    [prepare] = spans[("shipping", "process OrderPlaced")]
    [prepared] = spans[("shipping", "publish ShipmentPrepared")]
    [notify] = spans[("notifications", "process ShipmentPrepared")]
    # No coordinator: each reaction starts a trace of its own and links to its cause.
    assert links(prepare) == [(placed["traceID"], placed["spanID"])]
    assert prepare["traceID"] != placed["traceID"] and parent_id(prepare) is None
    assert prepared["traceID"] == prepare["traceID"] and parent_id(prepared) == prepare["spanID"]
    assert links(notify) == [(prepared["traceID"], prepared["spanID"])]
    assert notify["traceID"] not in {placed["traceID"], prepare["traceID"]}
    # Unlike the orchestrated saga's steps, the reactions carry no saga attributes.
    assert tag(placed, "saga.id") is None and tag(prepare, "saga.id") is None and tag(notify, "saga.id") is None
    for span in (prepare, notify):
        assert tag(span, "span.kind") == "consumer" and tag(span, "error") is None

    [parcel] = requests.get(f"{demo.url('shipping')}/parcels", params={"order_id": order_id}, timeout=5).json()[
        "parcels"
    ]
    texts = requests.get(f"{demo.url('notifications')}/notifications", params={"order_id": order_id}, timeout=5)
    assert any(parcel["tracking_number"] in n["text"] for n in texts.json()["notifications"])


def test_the_service_graph_draws_the_event_edges_asynchronous(demo: Demo, jaeger: Jaeger) -> None:
    """The consumers' POST /events is the relay's transport, untraced: the edges from a
    producer to its consumers come from the CONSUMER spans' links, dashed on the graph,
    not drawn as synchronous calls; orders -> shipping stays synchronous (saga steps)."""
    session = requests.Session()
    session.headers["Authorization"] = demo.log_in("ada").header
    order_id = session.post(f"{demo.gateway_url}/api/orders", json=ORDER, timeout=30).json()["order_id"]
    wait_until(
        lambda: (found := chain_spans(jaeger, order_id)) and all(found.get(w) for w in WANTED),
        interval=0.3,
        message=describe(demo, f"the chain of order {order_id}"),
    )

    edges = requests.get(f"{demo.ui_url}/api/v1/graph", timeout=10).json()["edges"]
    modes = {(e["parent"], e["child"]): e["mode"] for e in edges}

    assert modes[("orders", "notifications")] == "async"
    assert modes[("shipping", "notifications")] == "async"
    assert modes[("orders", "shipping")] == "sync"
    # No service answered a span for the relay's delivery.
    assert not jaeger.find("notifications", operation="POST /events")


def test_a_redelivered_event_is_acknowledged_and_not_processed_again(demo: Demo, jaeger: Jaeger) -> None:
    session = requests.Session()
    session.headers["Authorization"] = demo.log_in("ada").header
    order_id = session.post(f"{demo.gateway_url}/api/orders", json=ORDER, timeout=30).json()["order_id"]
    chain = wait_until(
        lambda: (found := chain_spans(jaeger, order_id)) and all(found.get(w) for w in WANTED) and found,
        interval=0.3,
        message=describe(demo, f"the chain of order {order_id}"),
    )
    [placed] = chain[("orders", "publish OrderPlaced")]
    message = {
        "message_id": tag(placed, "messaging.message.id"),
        "topic": "OrderPlaced",
        "payload": {"order_id": order_id},
        "headers": {},
    }

    again = requests.post(f"{demo.url('shipping')}/events", json=message, timeout=5)

    assert again.status_code == 202 and again.json()["duplicate"] is True
    time.sleep(1.0)  # five rounds of shipping's inbox worker and relay (0.2 s each)
    parcels = requests.get(f"{demo.url('shipping')}/parcels", params={"order_id": order_id}, timeout=5).json()
    assert len(parcels["parcels"]) == 1
    after = chain_spans(jaeger, order_id)
    assert len(after[("shipping", "process OrderPlaced")]) == 1
    assert len(after[("shipping", "publish ShipmentPrepared")]) == 1
    bad = requests.post(f"{demo.url('shipping')}/events", json={"topic": "OrderPlaced"}, timeout=5)
    assert bad.status_code == 400 and "not an event message" in bad.json()["error"]


def probed_order(demo: Demo, session: requests.Session, order: dict[str, Any]) -> tuple[requests.Response, str]:
    """POST ``order`` through the gateway with a baggage probe; return the answer and the probe."""
    probe = secrets.token_hex(8)
    answer = session.post(
        f"{demo.gateway_url}/api/orders", json=order, headers={"baggage": f"chaos.experiment_id={probe}"}, timeout=30
    )
    return answer, probe


def gateway_trace(demo: Demo, jaeger: Jaeger, probe: str, ready: Any) -> dict[str, Any]:
    """The stored trace of the request marked with ``probe``, once its gateway root has
    arrived (it ends last) and ``ready(trace)`` holds."""

    def stored() -> dict[str, Any] | None:
        for candidate in jaeger.find("gateway", tags={"chaos.experiment_id": probe}):
            full = jaeger.trace(candidate["traceID"])
            if full is not None and any(parent_id(s) is None for s in full["spans"]) and ready(full):
                return full
        return None

    return wait_until(stored, interval=0.3, message=describe(demo, f"the trace of probe {probe}"))


def test_one_order_trace_holds_rest_grpc_and_events_side_by_side(demo: Demo, jaeger: Jaeger) -> None:
    session = requests.Session()
    session.headers["Authorization"] = demo.log_in("ada").header
    answer, probe = probed_order(demo, session, ORDER)
    assert answer.status_code == 201, answer.text
    order_id = answer.json()["order_id"]

    def whole(trace: dict[str, Any]) -> bool:
        names = {(service_of(trace, s), s["operationName"]) for s in trace["spans"]}
        return ("orders", "publish OrderPlaced") in names and any(tag(s, "rpc.system") for s in trace["spans"])

    trace = gateway_trace(demo, jaeger, probe, whole)
    spans = trace["spans"]
    [http] = [s for s in spans if parent_id(s) is None]
    assert (service_of(trace, http), tag(http, "span.kind")) == ("gateway", "server")
    assert http["operationName"] == "POST /api/orders"
    assert tag(http, "customer_check.outcome") == "known"
    # gRPC: the gateway's CLIENT span under its HTTP span, users' SERVER span under that.
    [grpc_client] = [s for s in spans if tag(s, "rpc.system") == "grpc" and tag(s, "span.kind") == "client"]
    [grpc_server] = [s for s in spans if tag(s, "rpc.system") == "grpc" and tag(s, "span.kind") == "server"]
    assert parent_id(grpc_client) == http["spanID"] and service_of(trace, grpc_client) == "gateway"
    assert parent_id(grpc_server) == grpc_client["spanID"] and service_of(trace, grpc_server) == "users"
    assert tag(grpc_client, "rpc.method") == "GetUser" and tag(grpc_client, "rpc.grpc.status_code") == 0
    # REST: the gateway's HTTP call to orders, after the check, and orders' calls on.
    [to_orders] = [s for s in spans if parent_id(s) == http["spanID"] and tag(s, "peer.service") == "orders"]
    assert tag(to_orders, "span.kind") == "client" and tag(to_orders, "http.request.method") == "POST"
    assert to_orders["startTime"] >= grpc_client["startTime"] + grpc_client["duration"]
    rest_callees = {
        tag(s, "peer.service")
        for s in spans
        if service_of(trace, s) == "orders" and tag(s, "span.kind") == "client" and tag(s, "http.request.method")
    }
    assert {"payment", "inventory", "shipping"} <= rest_callees
    # Events: the PRODUCER span in this trace; each consumer's span, in a trace of its own, links to it.
    [placed] = [s for s in spans if s["operationName"] == "publish OrderPlaced"]
    assert tag(placed, "span.kind") == "producer" and tag(placed, CONVERSATION) == order_id
    consumers = wait_until(
        lambda: (found := chain_spans(jaeger, order_id)) and all(found.get(w) for w in WANTED) and found,
        interval=0.3,
        message=describe(demo, f"the consumers of order {order_id}'s OrderPlaced"),
    )
    for consumer in ("shipping", "notifications"):
        [process] = consumers[(consumer, "process OrderPlaced")]
        assert links(process) == [(trace["traceID"], placed["spanID"])]


def test_an_order_for_an_unknown_customer_is_refused_before_orders_sees_it(demo: Demo, jaeger: Jaeger) -> None:
    session = requests.Session()
    session.headers["Authorization"] = demo.log_in("ada").header
    answer, probe = probed_order(demo, session, {**ORDER, "user_id": 99})
    too_big = session.post(f"{demo.gateway_url}/api/orders", json={**ORDER, "user_id": 2**70}, timeout=30)
    unreadable = session.post(f"{demo.gateway_url}/api/orders", json={**ORDER, "user_id": "x"}, timeout=30)

    assert answer.status_code == 422
    assert answer.json() == {"error": "no user 99: an order needs a known customer"}
    assert too_big.status_code == 422 and f"no user {2**70}" in too_big.json()["error"]
    assert unreadable.status_code == 400 and "user_id" in unreadable.json()["error"]  # orders' own validation
    trace = gateway_trace(demo, jaeger, probe, lambda t: "users" in {service_of(t, s) for s in t["spans"]})
    # The registry's lookup of users is there too on a discovery cache miss; orders is not.
    assert {service_of(trace, s) for s in trace["spans"]} - {"registry"} == {"gateway", "users"}
    [http] = [s for s in trace["spans"] if parent_id(s) is None]
    assert tag(http, "customer_check.outcome") == "unknown"
    assert tag(http, "http.response.status_code") == 422
    [server] = [s for s in trace["spans"] if service_of(trace, s) == "users"]
    assert tag(server, "rpc.grpc.status_code") == 5  # NOT_FOUND


def test_with_users_stopped_the_customer_check_is_skipped_and_the_order_placed(demo: Demo, jaeger: Jaeger) -> None:
    session = requests.Session()
    session.headers["Authorization"] = demo.log_in("ada").header
    demo.stop_instance("users")
    try:
        answer, probe = probed_order(demo, session, ORDER)
    finally:
        demo.start_instance("users")

    assert answer.status_code == 201, answer.text
    trace = gateway_trace(demo, jaeger, probe, lambda t: "orders" in {service_of(t, s) for s in t["spans"]})
    assert "users" not in {service_of(trace, s) for s in trace["spans"]}
    [http] = [s for s in trace["spans"] if parent_id(s) is None]
    assert tag(http, "customer_check.outcome") == "skipped"
    [skipped] = log_events(http, "customer_check.skipped")
    assert skipped["peer.service"] == "users"
    assert "users unavailable" in skipped["customer_check.reason"]
