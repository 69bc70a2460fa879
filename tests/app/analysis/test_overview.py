"""The overview's figures: service health, breakers in trouble, recent compensations."""

from __future__ import annotations

from app.analysis.breakers import BreakerView
from app.analysis.overview import recent_compensations, service_health, troubled_breakers
from collectors.model import HISTOGRAM_BUCKETS, STATUS_ERROR, Histogram, OperationTraffic, SagaInstance, SagaStepSpan

WINDOW_NS = 60 * 1_000_000_000


def traffic(service: str, name: str, requests: int, errors: int = 0) -> OperationTraffic:
    counts = [0] * HISTOGRAM_BUCKETS
    counts[10] = requests
    return OperationTraffic(service, name, requests, errors, requests * 1_000_000, Histogram(tuple(counts), 2_000_000))


def test_service_health_sums_operations_and_lists_idle_services():
    ops = [traffic("orders", "POST /orders", 30, 3), traffic("orders", "GET /orders", 30), traffic("users", "GET", 6)]
    health = {h.name: h for h in service_health(["orders", "users", "quiet"], ops, WINDOW_NS)}
    assert list(health) == ["orders", "quiet", "users"]
    orders = health["orders"].red
    assert (orders.count, orders.error_count, orders.rate_per_s) == (60, 3, 1.0)
    assert health["orders"].health == "bad" and health["users"].health == "ok"
    assert (health["quiet"].red.count, health["quiet"].health, health["quiet"].red.p99_ns) == (0, "idle", 0)


def test_troubled_breakers_are_the_open_then_the_half_open():
    views = [
        BreakerView("b", "orders", "x", "half_open", None, None),
        BreakerView("c", "orders", "x", "closed", None, None),
        BreakerView("z", "orders", "x", "open", None, None),
        BreakerView("a", "orders", "x", "open", None, None),
    ]
    assert [(v.name, v.state) for v in troubled_breakers(views)] == [("a", "open"), ("z", "open"), ("b", "half_open")]


def saga(saga_id: str, start: int, outcome: str | None) -> SagaInstance:
    return SagaInstance(saga_id, "order", "ab" * 16, "", "orders", start, start + 10, outcome)


def step(saga_id: str, name: str, phase: str, start: int, message: str = "", ok: bool = True) -> SagaStepSpan:
    status = 0 if ok else STATUS_ERROR
    span_id = f"{start:016x}"
    return SagaStepSpan(saga_id, name, 0, phase, "orders", start, start + 1, status, message, "ab" * 16, span_id)


def test_recent_compensations_are_newest_first_within_the_window_with_step_and_reason():
    sagas = [
        saga("old", 5, "compensated"),
        saga("c1", 20, "compensated"),
        saga("f1", 30, "failed"),
        saga("ok", 40, "completed"),
    ]
    steps = {
        "c1": [step("c1", "pay", "action", 21, "card declined", ok=False)],
        "f1": [
            step("f1", "ship", "action", 31, ok=False),
            step("f1", "pay", "compensation", 32, "refund refused", ok=False),
        ],
    }
    found = recent_compensations(sagas, steps, since_ns=10, limit=5)
    assert [(c.saga.saga_id, c.failed_step, c.reason) for c in found] == [
        ("f1", "ship", "step ship failed; compensating pay failed: refund refused"),
        ("c1", "pay", "card declined"),
    ]
    assert [c.saga.saga_id for c in recent_compensations(sagas, steps, since_ns=0, limit=2)] == ["f1", "c1"]
