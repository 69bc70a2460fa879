"""The order saga's pivot, its retries and its log, on the real demo: orders held between
two steps by its ``hold_at`` switch, then killed with SIGKILL and restarted by the launcher,
or made to meet a transient failure, a 409 or a concurrent append after the pivot."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import requests

from demo_services.launcher import Demo
from tests.demo.helpers import TEST_ENV, Jaeger, describe, log_events, parent_id, tag
from tests.helpers import wait_until

pytestmark = [pytest.mark.demo, pytest.mark.timeout(300)]
ORDER = {"user_id": 3, "items": [{"product_id": 2, "quantity": 1}]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Spyglass and every demo service, once for the module, stopped at its end."""
    with Demo(data_dir=tmp_path_factory.mktemp("saga"), env=TEST_ENV, out=io.StringIO()) as running:
        yield running


@pytest.fixture(autouse=True)
def no_hold_left(demo: Demo) -> Iterator[None]:
    """Whatever a test does, orders holds nothing after it (a restarted orders holds nothing anyway)."""
    yield
    wait_until(lambda: _cleared(demo), interval=0.2, message=describe(demo, "orders to take hold_at back"))


def _cleared(demo: Demo) -> bool:
    try:
        return demo.control("orders", hold_at="")["hold_at"] == ""
    except requests.RequestException:
        return False  # orders is being restarted


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """A thread to place an order in while the test holds, kills or changes orders."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


@pytest.fixture
def jaeger(demo: Demo) -> Jaeger:
    return Jaeger(demo.ui_url)


def order_in_background(demo: Demo, pool: ThreadPoolExecutor) -> Future:
    """POST an order through the gateway from another thread; its answer may never come."""

    def send() -> requests.Response | None:
        try:
            return requests.post(
                f"{demo.gateway_url}/api/orders",
                json=ORDER,
                headers={"Authorization": demo.log_in("grace").header},
                timeout=30,
            )
        except requests.RequestException:
            return None

    return pool.submit(send)


def held_saga(demo: Demo, point: str) -> dict[str, Any]:
    """Wait until orders holds a request at ``point``; return the unfinished saga."""

    def holding() -> bool:
        answer = requests.get(f"{demo.url('orders')}/health", timeout=5).json()
        return answer.get("holding") == point

    wait_until(holding, interval=0.1, message=describe(demo, f"orders to hold at {point}"))
    unfinished = [
        saga
        for status in ("running", "forward")
        for saga in requests.get(f"{demo.url('orders')}/orders/sagas", params={"status": status}, timeout=5).json()[
            "sagas"
        ]
    ]
    assert len(unfinished) == 1, unfinished
    return unfinished[0]


def saga_status(demo: Demo, saga_id: str) -> str | None:
    try:
        return requests.get(f"{demo.url('orders')}/orders/sagas/{saga_id}", timeout=2).json()["status"]
    except (requests.RequestException, ValueError, KeyError):
        return None


def finished(demo: Demo, saga_id: str) -> str:
    """Wait until the saga log has the saga's outcome; return it."""
    return wait_until(
        lambda: (s := saga_status(demo, saga_id)) in ("completed", "compensated", "failed") and s,
        interval=0.2,
        message=describe(demo, f"saga {saga_id} to finish"),
    )


def payment_status(demo: Demo, payment_id: str) -> str:
    return requests.get(f"{demo.url('payment')}/payments/{payment_id}", timeout=5).json()["status"]


def order_doc(demo: Demo, order_id: str) -> dict[str, Any]:
    return requests.get(f"{demo.url('orders')}/orders/{order_id}", timeout=5).json()


def saga_spans(demo: Demo, jaeger: Jaeger, saga_id: str, ready: Callable[[list[dict]], bool]) -> list[dict]:
    """Every stored span of the saga (one trace), once ``ready`` says they have arrived."""

    def spans() -> list[dict] | None:
        found = jaeger.find("orders", tags={"saga.id": saga_id})
        if not found:
            return None
        full = jaeger.trace(found[0]["traceID"])
        return full["spans"] if full is not None and ready(full["spans"]) else None

    return wait_until(spans, interval=0.3, message=describe(demo, f"the spans of saga {saga_id}"))


def steps(spans: list[dict], phase: str) -> list[dict]:
    return sorted((s for s in spans if tag(s, "saga.phase") == phase), key=lambda s: s["startTime"])


def resumed_root(spans: list[dict]) -> dict | None:
    return next((s for s in spans if str(tag(s, "saga.resumed")).lower() == "true"), None)


def resumed_and_finished(spans: list[dict]) -> bool:
    root = resumed_root(spans)
    return root is not None and tag(root, "saga.outcome") is not None


def saga_page_check(demo: Demo, saga_id: str, outcome: str) -> dict[str, Any]:
    """The saga as Spyglass's /api/v1/sagas/<id> reads it, once it has ``outcome``."""

    def read() -> dict[str, Any] | None:
        answer = requests.get(f"{demo.ui_url}/api/v1/sagas/{saga_id}", timeout=5)
        body = answer.json() if answer.status_code == 200 else None
        return body if body and body["outcome"] == outcome else None

    return wait_until(read, interval=0.3, message=describe(demo, f"saga {saga_id} {outcome} in Spyglass"))


def kill_and_restart_orders(demo: Demo) -> None:
    before = demo.pids()["orders"]
    demo.kill("orders", restart=True)
    wait_until(
        lambda: demo.pids().get("orders", before) != before,
        interval=0.1,
        message=describe(demo, "orders to be restarted"),
    )


def test_orders_killed_before_the_pivot_compensates_after_its_restart(
    demo: Demo, pool: ThreadPoolExecutor, jaeger: Jaeger
) -> None:
    demo.control("orders", hold_at="capture_payment")
    order_in_background(demo, pool)
    saga = held_saga(demo, "capture_payment")
    payment_id, order_id = saga["context"]["payment_id"], saga["context"]["order_id"]
    assert payment_status(demo, payment_id) == "authorized"
    # The killed process exported the spans of the steps it finished: wait until they are stored.
    saga_spans(demo, jaeger, saga["saga_id"], lambda s: len(steps(s, "action")) == 4)

    kill_and_restart_orders(demo)  # the new process starts with no hold

    assert finished(demo, saga["saga_id"]) == "compensated"
    assert payment_status(demo, payment_id) == "voided"
    assert order_doc(demo, order_id)["status"] == "cancelled"
    spans = saga_spans(demo, jaeger, saga["saga_id"], resumed_and_finished)
    root = resumed_root(spans)
    assert root is not None and tag(root, "saga.outcome") == "compensated"
    assert [e["saga.step"] for e in log_events(root, "saga.resumed")] == ["capture_payment"]
    interrupted = [s for s in steps(spans, "action") if tag(s, "saga.step") == "capture_payment"]
    assert len(interrupted) == 1 and "interrupted" in str(tag(interrupted[0], "otel.status_description"))
    assert [tag(s, "saga.step") for s in steps(spans, "compensation")] == [
        "schedule_shipping",
        "reserve_inventory",
        "reserve_payment",
        "create_order",
    ]
    stored = saga_page_check(demo, saga["saga_id"], "compensated")
    assert stored["check"] == {"ok": True, "failed_step": "capture_payment", "violations": []}
    # The steps before the crash were exported by the killed process: one trace holds both runs.
    assert [tag(s, "saga.step") for s in steps(spans, "action")][:4] == [
        "create_order",
        "reserve_payment",
        "reserve_inventory",
        "schedule_shipping",
    ]


def test_orders_killed_after_the_pivot_carries_the_saga_forward_after_its_restart(
    demo: Demo, pool: ThreadPoolExecutor, jaeger: Jaeger
) -> None:
    demo.control("orders", hold_at="confirm_shipping")
    order_in_background(demo, pool)
    saga = held_saga(demo, "confirm_shipping")
    assert saga["status"] == "forward"
    payment_id, order_id = saga["context"]["payment_id"], saga["context"]["order_id"]
    assert payment_status(demo, payment_id) == "captured"
    saga_spans(demo, jaeger, saga["saga_id"], lambda s: len(steps(s, "action")) == 6)

    kill_and_restart_orders(demo)

    assert finished(demo, saga["saga_id"]) == "completed"
    assert order_doc(demo, order_id)["status"] == "placed"
    spans = saga_spans(demo, jaeger, saga["saga_id"], resumed_and_finished)
    assert tag(resumed_root(spans), "saga.outcome") == "completed"
    assert steps(spans, "compensation") == []
    resumed = [tag(s, "saga.step") for s in steps(spans, "action") if parent_id(s) == resumed_root(spans)["spanID"]]
    assert resumed == ["confirm_shipping", "complete_order"]


def test_a_transient_failure_after_the_pivot_is_retried_forward_not_compensated(
    demo: Demo, pool: ThreadPoolExecutor, jaeger: Jaeger
) -> None:
    demo.control("orders", hold_at="confirm_shipping")
    answer = order_in_background(demo, pool)
    saga = held_saga(demo, "confirm_shipping")
    demo.control("shipping", error_rate=1.0)
    try:
        demo.control("orders", hold_at="")
        response = answer.result(timeout=30)
    finally:
        demo.control("shipping", error_rate=0.0)

    assert response is not None and response.status_code == 202, response.text if response else None
    assert response.json()["outcome"] == "pending" and response.json()["pending"] == "confirm_shipping"
    assert finished(demo, saga["saga_id"]) == "completed"
    assert payment_status(demo, saga["context"]["payment_id"]) == "captured"
    assert order_doc(demo, saga["context"]["order_id"])["status"] == "placed"
    spans = saga_spans(
        demo, jaeger, saga["saga_id"], lambda s: any(tag(x, "saga.outcome") == "completed" for x in s)
    )
    assert steps(spans, "compensation") == []
    confirms = [s for s in steps(spans, "action") if tag(s, "saga.step") == "confirm_shipping"]
    first_try = confirms[0]
    retries = log_events(first_try, "saga.step.retry")
    assert [int(r["retry.attempt"]) for r in retries] == [1, 2, 3]
    calls = [s for s in spans if parent_id(s) == first_try["spanID"] and tag(s, "peer.service") == "shipping"]
    assert sorted(tag(s, "retry.attempt") for s in calls if tag(s, "retry.attempt") is not None) == [2, 3, 4]
    assert tag(confirms[-1], "error") is None  # the last try, carried forward, succeeded
    stored = saga_page_check(demo, saga["saga_id"], "completed")
    assert stored["check"]["ok"] and stored["check"]["failed_step"] is None
    kinds = {(s["step"], s["kind"]) for s in stored["steps"]}
    assert {("capture_payment", "pivot"), ("confirm_shipping", "retriable")} <= kinds


def test_a_409_after_the_pivot_is_not_retried(demo: Demo, pool: ThreadPoolExecutor, jaeger: Jaeger) -> None:
    demo.control("orders", hold_at="commit_inventory")
    answer = order_in_background(demo, pool)
    saga = held_saga(demo, "commit_inventory")
    order_id = saga["context"]["order_id"]
    released = requests.delete(f"{demo.url('inventory-1')}/reservations/{order_id}", timeout=5)
    assert released.status_code == 200
    demo.control("orders", hold_at="")
    response = answer.result(timeout=30)

    assert response is not None and response.status_code == 409, response.text if response else None
    assert response.json()["outcome"] == "failed"
    assert finished(demo, saga["saga_id"]) == "failed"
    spans = saga_spans(demo, jaeger, saga["saga_id"], lambda s: any(tag(x, "saga.outcome") for x in s))
    commit = next(s for s in steps(spans, "action") if tag(s, "saga.step") == "commit_inventory")
    assert log_events(commit, "saga.step.retry") == []
    calls = [s for s in spans if parent_id(s) == commit["spanID"]]
    assert [(tag(s, "http.response.status_code"), tag(s, "retry.attempt")) for s in calls] == [(409, None)]
    assert steps(spans, "compensation") == []


def test_a_concurrent_append_gets_a_version_conflict_and_the_command_is_retried(
    demo: Demo, pool: ThreadPoolExecutor, jaeger: Jaeger
) -> None:
    demo.control("orders", hold_at="append OrderPlaced")
    answer = order_in_background(demo, pool)
    saga = held_saga(demo, "append OrderPlaced")
    order_id = saga["context"]["order_id"]
    note = requests.post(
        f"{demo.gateway_url}/api/orders/{order_id}/notes",
        json={"text": "leave it with the neighbours"},
        headers={"Authorization": demo.log_in("grace").header},
        timeout=10,
    )
    assert note.status_code == 201, note.text
    demo.control("orders", hold_at="")
    response = answer.result(timeout=30)

    assert response is not None and response.status_code == 201, response.text if response else None
    order = response.json()["order"]
    assert (order["status"], order["notes"]) == ("placed", ["leave it with the neighbours"])
    spans = saga_spans(
        demo, jaeger, saga["saga_id"], lambda s: any(x["operationName"] == "order command PlaceOrder" for x in s)
    )
    command = next(s for s in spans if s["operationName"] == "order command PlaceOrder")
    conflicts = log_events(command, "event_sourcing.version_conflict")
    expected = order["version"] - 2  # created (and items), then the note, then OrderPlaced
    versions = [(int(c["event_sourcing.version.expected"]), int(c["event_sourcing.version.actual"])) for c in conflicts]
    assert versions == [(expected, expected + 1)]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/orders/sagas?status=<b>", None, 400, "unknown saga status"),
        ("GET", "/orders/sagas/no-such-saga", None, 404, "no saga"),
        ("POST", "/orders/no-such-order/notes", {"text": "hi"}, 404, "no order"),
        ("POST", "/orders/no-such-order/notes", {"text": ""}, 400, "text must be"),
        ("POST", "/orders/no-such-order/notes", {"text": "x" * 501}, 400, "at most 500"),
        ("POST", "/orders/no-such-order/notes", None, 400, "text must be"),
    ],
)
def test_bad_requests_to_the_saga_log_and_notes_get_a_4xx_with_a_message(
    demo: Demo, method: str, path: str, body: Any, status: int, message: str
) -> None:
    answer = requests.request(method, f"{demo.url('orders')}{path}", json=body, timeout=5)

    assert answer.status_code == status
    assert message in answer.json()["error"]
