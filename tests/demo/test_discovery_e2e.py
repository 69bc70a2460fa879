"""Discovery on the real demo, as Spyglass's HTTP API and registry page show it.

The module's demo caches discovery answers for 6 s. A fail-over test first waits for an
order whose trace shows a fresh lookup finding both inventory instances, so that the one
it then makes unavailable is still a candidate for the next calls (else the registry may
drop it first, and nothing would fail over).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from bs4 import BeautifulSoup

from demo_services.launcher import Demo
from tests.demo.helpers import (
    TEST_ENV,
    Jaeger,
    describe,
    is_true,
    log_events,
    parent_id,
    process_tag,
    service_of,
    tag,
)
from tests.helpers import group_members, wait_until

pytestmark = [pytest.mark.demo, pytest.mark.timeout(240)]
ORDER = {"user_id": 1, "items": [{"product_id": 2, "quantity": 1}]}
CACHE_S = 6
BOTH = ["inventory-1", "inventory-2"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo, with a 6 s discovery cache; every process stopped at the end."""
    data_dir = tmp_path_factory.mktemp("discovery")
    env = {**TEST_ENV, "SPYGLASS_DEMO_DISCOVERY_CACHE_S": str(CACHE_S)}
    with Demo(data_dir=data_dir, env=env, out=io.StringIO()) as running:
        yield running
        groups = list(running.pids().values())
    assert {group: group_members(group) for group in groups} == dict.fromkeys(groups, [])


@pytest.fixture(scope="module")
def jaeger(demo: Demo) -> Jaeger:
    """Read traces from the demo's Spyglass."""
    return Jaeger(demo.ui_url)


@pytest.fixture
def api(demo: Demo) -> requests.Session:
    """An HTTP session to the gateway, logged in as ada (user 1)."""
    session = requests.Session()
    session.headers["Authorization"] = demo.log_in("ada").header
    return session


def place_order(demo: Demo, api: requests.Session) -> dict[str, Any]:
    """Place an order through the gateway; it must complete."""
    response = api.post(f"{demo.gateway_url}/api/orders", json=ORDER, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def spans_named(trace: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The spans of ``trace`` called ``name``."""
    return [s for s in trace["spans"] if s["operationName"] == name]


def children(trace: dict[str, Any], span: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans of ``trace`` whose parent is ``span``."""
    return [s for s in trace["spans"] if parent_id(s) == span["spanID"]]


def test_a_lookup_is_a_span_with_the_registrys_own_span_under_it(
    demo: Demo, api: requests.Session, jaeger: Jaeger
) -> None:
    place_order(demo, api)

    def lookup_trace() -> dict[str, Any] | None:
        for found in jaeger.find("orders", operation="discovery.lookup inventory"):
            trace = jaeger.trace(found["traceID"])
            lookup = spans_named(trace, "discovery.lookup inventory") if trace else []
            ids = {s["spanID"] for s in trace["spans"]} if trace else set()
            # Spans arrive in batches: wait for the registry's span and the call's as well.
            if (
                lookup
                and parent_id(lookup[0]) in ids
                and any(service_of(trace, s) == "registry" for s in children(trace, lookup[0]))
            ):
                return trace
        return None

    trace = wait_until(lookup_trace, interval=0.3, message=describe(demo, "a traced lookup of inventory"))
    [lookup] = spans_named(trace, "discovery.lookup inventory")
    assert tag(lookup, "span.kind") == "client"
    assert tag(lookup, "peer.service") == "registry"
    assert is_true(tag(lookup, "discovery.cache.hit")) is False
    # An array attribute reads back as a JSON string tag, as Jaeger shows it. (A health
    # check that timed out on a busy machine may have left one instance out for a moment.)
    candidates = json.loads(tag(lookup, "discovery.candidates"))
    assert candidates and set(candidates) <= {"inventory-1", "inventory-2"}
    assert tag(lookup, "discovery.instance.id") == candidates[0]
    call = next(s for s in trace["spans"] if s["spanID"] == parent_id(lookup))
    assert service_of(trace, call) == "orders" and tag(call, "peer.service") == "inventory"
    [served] = [s for s in children(trace, lookup) if service_of(trace, s) == "registry"]
    assert tag(served, "span.kind") == "server"
    assert tag(served, "discovery.service") == "inventory"

    wait_until(
        lambda: "registry" in requests.get(f"{demo.ui_url}/api/services", timeout=5).json()["data"],
        message=describe(demo, "registry in /api/services"),
    )
    operations = requests.get(f"{demo.ui_url}/api/services/registry/operations", timeout=5).json()["data"]
    # Only lookups are traced: no registration, heartbeat or listing.
    assert set(operations) == {"GET /services/<name>"}
    assert ("orders", "registry") in jaeger.dependencies()


def place_orders_until_a_fresh_lookup_finds_both(demo: Demo, api: requests.Session, jaeger: Jaeger) -> None:
    """Place orders until one's trace shows orders asking the registry for inventory and
    being given both instances: its discovery cache then holds both for ``CACHE_S``."""
    for _ in range(4 * CACHE_S):
        saga_id = place_order(demo, api)["saga_id"]

        def finished() -> dict[str, Any] | None:
            found = jaeger.find("orders", tags={"saga.id": saga_id})
            trace = jaeger.trace(found[0]["traceID"]) if found else None
            roots = [s for s in trace["spans"] if tag(s, "saga.outcome")] if trace else []
            return trace if roots else None

        trace = wait_until(finished, interval=0.2, message=describe(demo, f"the trace of saga {saga_id}"))
        lookups = spans_named(trace, "discovery.lookup inventory")
        if lookups and sorted(json.loads(tag(lookups[-1], "discovery.candidates"))) == BOTH:
            return
        time.sleep(0.5)
    raise AssertionError(describe(demo, "an order whose lookup found both inventory instances")())


def stop_with_the_switch(demo: Demo) -> Callable[[], None]:
    """Make inventory-1 answer 503 out of service (its /control ``stopped`` switch)."""
    demo.control("inventory-1", stopped=True)
    return lambda: demo.control("inventory-1", stopped=False)


def stop_the_process(demo: Demo) -> Callable[[], None]:
    """Stop inventory-1's process (it deregisters; connecting to it is refused)."""
    demo.stop_instance("inventory-1")
    return lambda: demo.start_instance("inventory-1")


@pytest.mark.parametrize("make_unavailable", [stop_with_the_switch, stop_the_process])
def test_a_stopped_instance_is_a_fail_over_event_and_a_second_call_in_one_trace(
    demo: Demo, api: requests.Session, jaeger: Jaeger, make_unavailable: Callable[[Demo], Callable[[], None]]
) -> None:
    seen = {t["traceID"] for t in jaeger.find("orders", tags={"discovery.failed_over": "true"})}
    place_orders_until_a_fresh_lookup_finds_both(demo, api, jaeger)
    restore = make_unavailable(demo)
    try:
        # Each order calls inventory at least three times, in round-robin order, so one
        # of these calls picks the unavailable instance.
        for _ in range(2):
            place_order(demo, api)
    finally:
        restore()

    def failed_over() -> dict[str, Any] | None:
        for found in jaeger.find("orders", tags={"discovery.failed_over": "true"}):
            if found["traceID"] in seen:
                continue
            trace = jaeger.trace(found["traceID"])
            spans = trace["spans"] if trace else []
            calls = [s for s in spans if is_true(tag(s, "discovery.failed_over"))]
            retries = [s for s in spans if tag(s, "http.request.resend_count") is not None]
            served = [s for s in spans if process_tag(trace, s, "service.instance.id") == "inventory-2"]
            if calls and retries and any(parent_id(s) in {r["spanID"] for r in retries} for s in served):
                return trace
        return None

    trace = wait_until(failed_over, interval=0.3, message=describe(demo, "a trace with a fail-over"))
    call = next(s for s in trace["spans"] if is_true(tag(s, "discovery.failed_over")))
    assert service_of(trace, call) == "orders" and tag(call, "span.kind") == "client"
    assert tag(call, "discovery.instance.id") == "inventory-1"
    [event] = log_events(call, "discovery.failover")
    assert event["discovery.instance.id"] == "inventory-1"
    assert event["discovery.next_instance.id"] == "inventory-2"
    # A stopped instance answers 503 (the switch) or refuses the connection (the process).
    assert event["discovery.failover.reason"] in {"503 out of service", "connection refused"}
    [retry] = [s for s in children(trace, call) if tag(s, "http.request.resend_count") is not None]
    assert retry["operationName"] == call["operationName"]
    assert tag(retry, "span.kind") == "client"
    assert int(tag(retry, "http.request.resend_count")) == 1
    assert tag(retry, "discovery.instance.id") == "inventory-2"
    assert tag(retry, "error") is None
    answered = [s for s in children(trace, retry) if service_of(trace, s) == "inventory"]
    assert [process_tag(trace, s, "service.instance.id") for s in answered] == ["inventory-2"]
    assert tag(call, "error") is None  # the caller got its answer

    # The registry page lists the fail-over and the lookups that reached the registry.
    page = BeautifulSoup(requests.get(f"{demo.ui_url}/registry/instances", timeout=10).text, "html.parser")
    rows = [[td.get_text(" ", strip=True) for td in tr.select("td")] for tr in page.select("tr.failover")]
    assert ["orders → inventory", "inventory-1"] in [r[1:3] for r in rows], rows
    callers = {tr.select("td")[0].get_text() for tr in page.select("table.lookups tr.lookup")}
    assert "orders" in callers
