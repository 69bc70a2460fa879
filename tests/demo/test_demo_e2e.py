"""The demo running for real on loopback: what one request does, as Spyglass stores it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from demo_services.launcher import Demo
from demo_services.order_log import OrderEvent, build_read_model
from demo_services.protocol import CONTROL_TOKEN_HEADER
from tests.demo.helpers import (
    NO_FAULTS,
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
DECLINED_CARD = "4000000000000002"
ORDER = {
    "user_id": 2,
    "items": [{"product_id": 1, "quantity": 1}, {"product_id": 3, "quantity": 2}],
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Start Spyglass and every demo service once for the module.

    Stopping it at the end is checked as a user would see it: no process of any child
    (Spyglass's workers and maintenance process included) and no port is left behind.
    """
    data_dir = tmp_path_factory.mktemp("demo")
    with Demo(data_dir=data_dir, env=TEST_ENV, out=io.StringIO()) as running:
        yield running
        groups = list(running.pids().values())
        # Spyglass's own processes (gunicorn, its maintenance process) run in its group.
        assert len(group_members(running.pids()["spyglass"])) > 1
    assert {group: group_members(group) for group in groups} == dict.fromkeys(groups, [])
    for port in running.ports.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=1)


@pytest.fixture(scope="module")
def jaeger(demo: Demo) -> Jaeger:
    """Read traces from the demo's Spyglass."""
    return Jaeger(demo.ui_url)


@pytest.fixture
def api(demo: Demo) -> requests.Session:
    """An HTTP session to the gateway, logged in as alan (user 2)."""
    session = requests.Session()
    session.headers["Authorization"] = demo.log_in("alan").header
    return session


def place_order(demo: Demo, api: requests.Session, **changes: Any) -> requests.Response:
    """POST an order through the gateway."""
    return api.post(f"{demo.gateway_url}/api/orders", json={**ORDER, **changes}, timeout=30)


def saga_trace(demo: Demo, jaeger: Jaeger, saga_id: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll until the trace of saga ``saga_id`` is stored and satisfies ``ready``."""

    def check() -> dict[str, Any] | None:
        found = jaeger.find("orders", tags={"saga.id": saga_id})
        if not found:
            return None
        full = jaeger.trace(found[0]["traceID"])
        return full if full is not None and ready(full) else None

    return wait_until(check, interval=0.2, message=describe(demo, f"the trace of saga {saga_id}"))


def saga_root(trace: dict[str, Any]) -> dict[str, Any] | None:
    """Return the saga's root span in ``trace``."""
    return next((s for s in trace["spans"] if s["operationName"] == "saga order"), None)


def finished_saga(trace: dict[str, Any]) -> bool:
    """Return whether the saga root (ended last) has arrived."""
    root = saga_root(trace)
    return root is not None and tag(root, "saga.outcome") is not None


def step_spans(trace: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    """Return the saga step spans of ``phase``, in start order."""
    spans = [s for s in trace["spans"] if tag(s, "saga.phase") == phase]
    return sorted(spans, key=lambda s: s["startTime"])


def test_registry_lists_every_instance_with_declared_dependencies(demo: Demo) -> None:
    answer = requests.get(f"{demo.registry_url}/instances", timeout=5)
    assert answer.headers["Server"] == "spyglass-demo"  # no server software or version
    listing = answer.json()["instances"]

    by_id = {i["instance_id"]: i for i in listing}
    assert set(by_id) >= {
        "gateway",
        "users",
        "orders",
        "inventory-1",
        "inventory-2",
        "payment",
        "shipping",
        "notifications",
    }
    assert all(i["healthy"] and i["last_heartbeat"] > 0 for i in listing)
    assert by_id["inventory-2"]["service"] == "inventory"
    assert by_id["orders"]["depends_on"] == ["inventory", "payment", "shipping", "notifications"]
    assert set(by_id["gateway"]["depends_on"]) == {"users", "orders", "inventory", "payment"}


def test_gateway_refuses_missing_token_with_json_401(demo: Demo) -> None:
    response = requests.get(f"{demo.gateway_url}/api/products", timeout=5)

    assert response.status_code == 401
    assert "bearer" in response.json()["error"]


def test_one_order_yields_one_trace_across_services_with_saga_attributes(
    demo: Demo, api: requests.Session, jaeger: Jaeger
) -> None:
    response = place_order(demo, api)
    assert response.status_code == 201, response.text
    saga_id = response.json()["saga_id"]
    wanted = {"gateway", "orders", "payment", "inventory", "shipping"}

    trace = saga_trace(
        demo,
        jaeger,
        saga_id,
        # The gateway's span ends last: wait for a root, not only for each service.
        lambda t: (
            finished_saga(t)
            and wanted <= {service_of(t, s) for s in t["spans"]}
            and any(parent_id(s) is None for s in t["spans"])
        ),
    )

    roots = [s for s in trace["spans"] if parent_id(s) is None]
    assert [service_of(trace, s) for s in roots] == ["gateway"]
    # The stable HTTP conventions, and a name that says which resource was asked for.
    [root_span] = roots
    assert root_span["operationName"] == "POST /api/orders"
    assert tag(root_span, "http.request.method") == "POST" and tag(root_span, "http.method") is None
    assert tag(root_span, "http.response.status_code") == 201 and tag(root_span, "http.status_code") is None
    assert tag(root_span, "url.path") == "/api/orders" and tag(root_span, "http.route") == "/api/orders"
    assert (tag(root_span, "rate_limit.limit"), tag(root_span, "rate_limit.window_ms")) == (25, 1000)
    root = saga_root(trace)
    assert root is not None
    assert tag(root, "saga.name") == "order"
    assert tag(root, "saga.outcome") == "completed"
    actions = step_spans(trace, "action")
    assert [(tag(s, "saga.step"), tag(s, "saga.step.kind")) for s in actions] == [
        ("create_order", "compensatable"),
        ("reserve_payment", "compensatable"),
        ("reserve_inventory", "compensatable"),
        ("schedule_shipping", "compensatable"),
        ("capture_payment", "pivot"),
        ("commit_inventory", "retriable"),
        ("confirm_shipping", "retriable"),
        ("complete_order", "retriable"),
    ]
    assert [tag(s, "saga.step.index") for s in actions] == list(range(8))
    assert all(tag(s, "saga.id") == saga_id for s in actions)
    assert all(parent_id(s) == root["spanID"] for s in actions)
    assert step_spans(trace, "compensation") == []
    edges = wait_until(
        lambda: (
            jaeger.dependencies()
            if {
                ("gateway", "orders"),
                ("orders", "payment"),
                ("orders", "inventory"),
                ("orders", "shipping"),
            }
            <= jaeger.dependencies()
            else None
        ),
        interval=0.2,
        message=describe(demo, "dependency edges"),
    )
    assert ("gateway", "orders") in edges


def test_order_details_calls_users_and_products_in_parallel(demo: Demo, api: requests.Session, jaeger: Jaeger) -> None:
    order_id = place_order(demo, api).json()["order_id"]
    # Slow both callees down so that sequential calls could not overlap by chance.
    for instance in ("users", "inventory-1", "inventory-2"):
        demo.control(instance, latency_ms=300)
    try:
        response = api.get(f"{demo.gateway_url}/api/order-details/{order_id}", timeout=10)
    finally:
        for instance in ("users", "inventory-1", "inventory-2"):
            demo.control(instance, latency_ms=0)

    assert response.status_code == 200, response.text
    details = response.json()
    assert details["order"]["order_id"] == order_id
    assert details["user"]["id"] == ORDER["user_id"]
    assert {p["id"] for p in details["products"]} == {1, 3}

    def composed() -> dict[str, Any] | None:
        for candidate in jaeger.find("gateway", limit=50):
            full = jaeger.trace(candidate["traceID"])
            if full is None:
                continue
            ops = [s for s in full["spans"] if tag(s, "span.kind") == "client" and service_of(full, s) == "gateway"]
            # Besides the calls, a lookup that missed the discovery cache asks the registry.
            called = {tag(s, "peer.service") for s in ops} - {"registry"}
            if called == {"orders", "users", "inventory"} and any(
                order_id in str(tag(s, "url.full")) for s in ops
            ):
                return full
        return None

    trace = wait_until(composed, interval=0.2, message=describe(demo, "the order-details trace"))
    clients = {
        tag(s, "peer.service"): s
        for s in trace["spans"]
        if tag(s, "span.kind") == "client" and service_of(trace, s) == "gateway"
    }
    users, products = clients["users"], clients["inventory"]
    assert parent_id(users) == parent_id(products)
    overlap = min(users["startTime"] + users["duration"], products["startTime"] + products["duration"])
    assert overlap > max(users["startTime"], products["startTime"]), "calls did not overlap"


def test_declined_payment_compensates_and_reports_compensated(
    demo: Demo, api: requests.Session, jaeger: Jaeger
) -> None:
    response = place_order(demo, api, card=DECLINED_CARD)

    assert response.status_code == 402, response.text
    body = response.json()
    assert body["outcome"] == "compensated"
    assert body["order"]["status"] == "cancelled"
    trace = saga_trace(demo, jaeger, body["saga_id"], finished_saga)
    assert tag(saga_root(trace), "saga.outcome") == "compensated"
    assert is_true(tag(saga_root(trace), "error"))
    failed = step_spans(trace, "action")[-1]
    assert tag(failed, "saga.step") == "reserve_payment" and is_true(tag(failed, "error"))
    assert [tag(s, "saga.step") for s in step_spans(trace, "compensation")] == ["create_order"]

    # The saga's row on /sagas says why: the deepest error span, the call payment declined.
    def saga_row() -> dict[str, Any] | None:
        rows = requests.get(f"{demo.ui_url}/api/v1/sagas", params={"limit": 200}, timeout=10).json()["sagas"]
        row = next((r for r in rows if r["saga_id"] == body["saga_id"]), None)
        # Spans arrive service by service: the reason settles once the deepest one is in.
        return row if row and row["reason"] == "orders: HTTP 402: card declined" else None

    wait_until(saga_row, interval=0.3, message=describe(demo, "the declined saga's reason: the declined call"))


def test_out_of_stock_compensates_completed_steps_in_reverse_order(
    demo: Demo, api: requests.Session, jaeger: Jaeger
) -> None:
    for instance in ("inventory-1", "inventory-2"):
        demo.control(instance, out_of_stock=True)
    try:
        response = place_order(demo, api)
    finally:
        for instance in ("inventory-1", "inventory-2"):
            demo.control(instance, out_of_stock=False)

    assert response.status_code == 409, response.text
    trace = saga_trace(demo, jaeger, response.json()["saga_id"], finished_saga)
    compensations = step_spans(trace, "compensation")
    assert [tag(s, "saga.step") for s in compensations] == ["reserve_payment", "create_order"]
    assert [tag(s, "saga.step.index") for s in compensations] == [1, 0]
    voids = [s for s in trace["spans"] if str(tag(s, "url.full")).endswith("/void")]
    assert [tag(s, "http.response.status_code") for s in voids] == [200]
    assert parent_id(voids[0]) == compensations[0]["spanID"]
    assert tag(saga_root(trace), "saga.outcome") == "compensated"


def test_repeated_payment_failures_open_breaker_and_half_open_trial_closes_it(
    demo: Demo, api: requests.Session, jaeger: Jaeger
) -> None:
    demo.control("payment", error_rate=1.0)
    try:
        failing = [place_order(demo, api) for _ in range(3)]
        rejected = place_order(demo, api)
    finally:
        demo.control("payment", error_rate=0.0)
    assert [r.status_code for r in failing] == [424, 424, 424], [r.text for r in failing]
    assert rejected.status_code == 424

    def rejected_call(trace: dict[str, Any]) -> bool:
        return finished_saga(trace) and any(is_true(tag(s, "circuit_breaker.rejected")) for s in trace["spans"])

    trace = saga_trace(demo, jaeger, rejected.json()["saga_id"], rejected_call)
    call = next(s for s in trace["spans"] if is_true(tag(s, "circuit_breaker.rejected")))
    assert tag(call, "circuit_breaker.name") == "orders->payment"
    assert tag(call, "circuit_breaker.state") == "open"
    assert (tag(call, "circuit_breaker.failure_threshold"), tag(call, "circuit_breaker.reset_timeout_ms")) == (3, 1500)
    assert is_true(tag(call, "error"))
    assert not [s for s in trace["spans"] if parent_id(s) == call["spanID"]]
    assert "payment" not in {service_of(trace, s) for s in trace["spans"]}

    def injected_error_seen(trace: dict[str, Any]) -> bool:
        return finished_saga(trace) and any(
            service_of(trace, s) == "payment" and is_true(tag(s, "error")) for s in trace["spans"]
        )

    tripped = saga_trace(demo, jaeger, failing[-1].json()["saga_id"], injected_error_seen)
    changes = [e for s in tripped["spans"] for e in log_events(s, "circuit_breaker.state_change")]
    assert [(c["circuit_breaker.state.from"], c["circuit_breaker.state.to"]) for c in changes] == [("closed", "open")]

    recovered = wait_until(
        lambda: (r := place_order(demo, api)).status_code == 201 and r,
        interval=0.2,
        message=describe(demo, "an order after the breaker's reset timeout"),
    )
    trace = saga_trace(demo, jaeger, recovered.json()["saga_id"], finished_saga)
    trial = next(s for s in trace["spans"] if tag(s, "circuit_breaker.name") == "orders->payment")
    assert tag(trial, "circuit_breaker.state") == "half_open"
    moves = [
        (e["circuit_breaker.state.from"], e["circuit_breaker.state.to"])
        for e in log_events(trial, "circuit_breaker.state_change")
    ]
    assert moves == [("open", "half_open"), ("half_open", "closed")]


def test_notification_consumer_span_links_to_its_producer(demo: Demo, api: requests.Session, jaeger: Jaeger) -> None:
    response = place_order(demo, api)
    assert response.status_code == 201, response.text

    def producer_ready(trace: dict[str, Any]) -> bool:
        return any(tag(s, "span.kind") == "producer" for s in trace["spans"])

    trace = saga_trace(demo, jaeger, response.json()["saga_id"], producer_ready)
    producer = next(s for s in trace["spans"] if tag(s, "span.kind") == "producer")
    assert producer["operationName"] == "publish OrderPlaced"
    message_id = tag(producer, "messaging.message.id")

    def consumer() -> dict[str, Any] | None:
        found = jaeger.find("notifications", tags={"messaging.message.id": message_id})
        for candidate in found:
            for span in candidate["spans"]:
                if tag(span, "span.kind") == "consumer":
                    return span
        return None

    span = wait_until(consumer, interval=0.2, message=describe(demo, f"the consumer span of message {message_id}"))
    assert span["operationName"] == "process OrderPlaced"
    assert tag(span, "saga.id") == response.json()["saga_id"]
    assert tag(span, "saga.step") == "notify_customer"
    assert span["traceID"] != producer["traceID"]
    links = [r for r in span["references"] if r["refType"] == "FOLLOWS_FROM"]
    assert [(r["traceID"], r["spanID"]) for r in links] == [(producer["traceID"], producer["spanID"])]
    texts = requests.get(
        f"{demo.url('notifications')}/notifications",
        params={"order_id": response.json()["order_id"]},
        timeout=5,
    ).json()
    # One notification for this event (shipping's ShipmentPrepared brings another, later).
    assert [n["message_id"] for n in texts["notifications"]].count(message_id) == 1


def test_rebuilding_the_read_model_from_the_event_log_equals_the_stored_one(demo: Demo, api: requests.Session) -> None:
    place_order(demo, api, items=[{"product_id": 2, "quantity": 1}, {"product_id": 2, "quantity": 4}])
    assert place_order(demo, api, card=DECLINED_CARD).json()["order"]["status"] == "cancelled"
    events = api.get(f"{demo.gateway_url}/api/orders/events", timeout=10).json()["events"]
    stored = api.get(f"{demo.gateway_url}/api/orders", timeout=10).json()["orders"]

    rebuilt = build_read_model(OrderEvent(**e) for e in events)

    assert {o["order_id"]: o for o in stored} == rebuilt
    assert {e["type"] for e in events} >= {
        "OrderCreated",
        "ItemAdded",
        "QuantityUpdated",
        "OrderPlaced",
        "OrderCancelled",
    }
    answer = api.post(f"{demo.gateway_url}/api/orders/read-model/rebuild", timeout=10).json()
    assert answer == {"orders": len(rebuilt), "events": len(events), "equal": True, "differences": []}


def test_control_endpoint_needs_the_launcher_token(demo: Demo) -> None:
    url = f"{demo.url('payment')}/control"

    assert requests.get(url, timeout=5).status_code == 403
    assert requests.get(url, headers={CONTROL_TOKEN_HEADER: "wrong"}, timeout=5).status_code == 403
    current = requests.get(url, headers={CONTROL_TOKEN_HEADER: demo.control_token}, timeout=5)
    assert current.json() == NO_FAULTS
    bad = requests.post(url, json={"error_rate": 2}, timeout=5, headers={CONTROL_TOKEN_HEADER: demo.control_token})
    assert bad.status_code == 400


def test_exceeding_the_rate_limit_gives_429_with_retry_after(demo: Demo) -> None:
    # Another user than the other tests' session: the limit is per user.
    headers = {"Authorization": demo.log_in("edsger").header}

    url = f"{demo.gateway_url}/api/users/1"
    # A burst from several threads exceeds 25/second even on a slow machine.
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: requests.get(url, headers=headers, timeout=10), range(100)))

    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    assert int(limited[0].headers["Retry-After"]) >= 0
    assert "rate limit" in limited[0].json()["error"]


def test_a_search_for_status_429_after_a_burst_finds_the_throttled_requests(demo: Demo, jaeger: Jaeger) -> None:
    headers = {"Authorization": demo.log_in("barbara").header}
    url = f"{demo.gateway_url}/api/products"
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: requests.get(url, headers=headers, timeout=10), range(100)))
    limited = sum(r.status_code == 429 for r in answers)
    assert limited, [r.status_code for r in answers]

    # The attribute the search form suggests is the one the spans carry.
    def throttled_traces() -> list[dict[str, Any]] | None:
        traces = jaeger.find("gateway", {"http.response.status_code": "429"}, limit=500)
        mine = [t for t in traces if t["spans"][0]["operationName"] == "GET /api/products"]
        return traces if len(mine) >= limited else None

    found = wait_until(
        throttled_traces,
        interval=0.3,
        message=describe(demo, f"{limited} traces answered 429"),
    )
    for trace in found:
        [root] = [s for s in trace["spans"] if parent_id(s) is None]
        assert "<resource>" not in root["operationName"]
        assert tag(root, "http.response.status_code") == 429 and tag(root, "error") is None
        assert len(trace["spans"]) == 1, "a throttled request reached a service"
    page = requests.get(
        f"{demo.ui_url}/traces", params={"service": "gateway", "tags": "http.response.status_code=429"}, timeout=10
    )
    assert page.status_code == 200 and "GET /api/products" in page.text

    def gateway_node() -> dict[str, Any] | None:
        graph = requests.get(f"{demo.ui_url}/api/v1/graph", params={"window": "15m"}, timeout=10).json()
        node = next((n for n in graph["nodes"] if n["name"] == "gateway"), None)
        return node if node and node["red"]["throttled_count"] >= limited else None

    node = wait_until(gateway_node, interval=0.3, message=describe(demo, "the gateway's throttled count"))
    assert node["rate_limit"] == {"limit": 25, "window_ms": 1000}


def test_stopped_instance_leaves_discovery_and_comes_back(demo: Demo, api: requests.Session) -> None:
    def healthy_inventory() -> set[str]:
        answer = requests.get(f"{demo.registry_url}/services/inventory", timeout=5).json()
        return {i["instance_id"] for i in answer["instances"]}

    demo.control("inventory-2", stopped=True)
    try:
        # Before the registry notices, callers still pick inventory-2: its 503 says it is
        # out of service, so they fail over to inventory-1 and every order goes through.
        assert [place_order(demo, api).status_code for _ in range(4)] == [201] * 4
        wait_until(
            lambda: healthy_inventory() == {"inventory-1"},
            interval=0.2,
            message=describe(demo, "inventory-2 to leave discovery"),
        )
        assert requests.get(f"{demo.url('inventory-2')}/health", timeout=5).status_code == 503
        assert [place_order(demo, api).status_code for _ in range(3)] == [201] * 3
    finally:
        demo.control("inventory-2", stopped=False)
    wait_until(
        lambda: healthy_inventory() == {"inventory-1", "inventory-2"},
        interval=0.2,
        message=describe(demo, "inventory-2 to come back"),
    )


def test_gateway_serves_cached_products_when_inventory_is_down(demo: Demo, api: requests.Session) -> None:
    fresh = api.get(f"{demo.gateway_url}/api/products", timeout=10)
    assert fresh.status_code == 200
    for instance in ("inventory-1", "inventory-2"):
        demo.control(instance, stopped=True)
    try:
        cached = api.get(f"{demo.gateway_url}/api/products", timeout=10)
    finally:
        for instance in ("inventory-1", "inventory-2"):
            demo.control(instance, stopped=False)

    assert cached.status_code == 200
    assert cached.headers["X-Spyglass-Fallback"] == "cache"
    assert cached.json() == fresh.json()


def test_crashed_child_is_restarted(demo: Demo) -> None:
    before = demo.pids()["users"]

    demo.kill("users", restart=True)

    restarted = describe(demo, "users to be restarted")
    wait_until(lambda: demo.pids().get("users", before) != before, interval=0.2, message=restarted)
    healthy_again = describe(demo, "users to be healthy again")
    wait_until(lambda: _healthy(f"{demo.url('users')}/health"), interval=0.2, message=healthy_again)

    # The registry marked users unhealthy while it was down; lookups (and so logins through
    # the gateway, in the tests after this one) find it again once its health check passes.
    def listed_healthy() -> bool:
        listing = requests.get(f"{demo.registry_url}/instances", timeout=5).json()["instances"]
        return any(i["instance_id"] == "users" and i["healthy"] for i in listing)

    wait_until(listed_healthy, interval=0.2, message=describe(demo, "the registry to list users healthy again"))


def test_orders_complete_through_the_other_inventory_instance_after_one_dies(
    demo: Demo, api: requests.Session, jaeger: Jaeger
) -> None:
    demo.kill("inventory-1", restart=False)

    answers = [place_order(demo, api) for _ in range(4)]

    assert [r.status_code for r in answers] == [201] * 4, [r.text for r in answers]
    trace = saga_trace(
        demo,
        jaeger,
        answers[-1].json()["saga_id"],
        lambda t: finished_saga(t) and "inventory" in {service_of(t, s) for s in t["spans"]},
    )
    served_by = {
        process_tag(trace, s, "service.instance.id") for s in trace["spans"] if service_of(trace, s) == "inventory"
    }
    assert served_by == {"inventory-2"}

    def dropped() -> bool:
        listing = requests.get(f"{demo.registry_url}/instances", timeout=5).json()["instances"]
        return "inventory-1" not in {i["instance_id"] for i in listing}

    wait_until(dropped, interval=0.2, message=describe(demo, "the registry to drop inventory-1 after its TTL"))


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
