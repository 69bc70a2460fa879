"""The choreographed chain on the real demo: OrderPlaced -> shipping prepares the parcel
and publishes ShipmentPrepared -> notifications tells the customer, each reaction a
CONSUMER span in a trace of its own linked to the PRODUCER span that caused it, each
message processed once, read back through Spyglass's HTTP API."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from demo_services.launcher import Demo
from tests.demo.helpers import TEST_ENV, Jaeger, describe, parent_id, service_of, tag
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
