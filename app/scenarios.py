"""The chaos lab's named scenarios: what each sends, which faults it sets, and how its
hypothesis is judged from the stored spans.

Names are fixed (scripts use them). Only scenarios that really run are listed here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.analysis import chaos as judge
from app.analysis.chaos import Check, Traces
from app.chaos_lab import Answer, Lab

INVENTORY_BREAKER = "orders->inventory"
SLOW_LATENCY_MS = 5000
"""Longer than the services' call timeout (2 s by default), so every call times out."""


@dataclass
class Evidence:
    """What a scenario is judged on: its traces and the breaker changes in its window."""

    traces: Traces
    sent: int
    transitions: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    consumers: Traces = field(default_factory=dict)
    """Traces of the messages the experiment's traces published (consumers start new traces)."""


@dataclass(frozen=True)
class Scenario:
    """A named experiment: ``drive`` sends traffic and sets faults (the lab restores
    them), ``judge`` turns the evidence into checks."""

    name: str
    title: str
    explanation: str
    hypothesis: str
    drive: Callable[[Lab, dict[str, Any]], None]
    judge: Callable[[Evidence], list[Check]]
    breakers: Sequence[str] = ()
    follows_messages: str = ""
    """The consumer whose processing of the events published in the run is judged too."""

    def public(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"name": self.name, "title": self.title, "explanation": self.explanation, "hypothesis": self.hypothesis}


# -- happy-order -------------------------------------------------------------------------------

HAPPY_ORDERS = 3


def _drive_happy(lab: Lab, notes: dict[str, Any]) -> None:
    notes["answers"] = [lab.order().status for _ in range(HAPPY_ORDERS)]


def _judge_happy(ev: Evidence) -> list[Check]:
    runs = judge.sagas(ev.traces)
    return [
        judge.check_traces_stored(ev.traces, ev.sent),
        judge.check_statuses(ev.traces, [201], "the gateway answered 201 Created to every order"),
        judge.check_outcomes(runs, "completed", ev.sent),
        *judge.check_full_orders(runs, ev.traces),
        judge.check_no_errors(ev.traces),
    ]


# -- payment-declined --------------------------------------------------------------------------

DECLINED_ORDERS = 2


def _drive_declined(lab: Lab, notes: dict[str, Any]) -> None:
    for target in lab.instances("payment"):
        lab.set_faults(target, decline=True)
    notes["answers"] = [lab.order().status for _ in range(DECLINED_ORDERS)]


def _judge_declined(ev: Evidence) -> list[Check]:
    runs = judge.sagas(ev.traces)
    return [
        judge.check_traces_stored(ev.traces, ev.sent),
        judge.check_statuses(ev.traces, [402], "the gateway answered 402 (card declined) to every order"),
        judge.check_outcomes(runs, "compensated", ev.sent),
        *judge.check_reverse_compensation(runs, "reserve_payment"),
    ]


# -- inventory-slow ----------------------------------------------------------------------------

TRIP_BATCH = 8
TRIP_BATCHES = 3
REFUSED_ORDERS = 3
RECOVERY_LIMIT_S = 40.0


def _refused(answer: Answer) -> bool:
    return "is open" in str(answer.body.get("error", ""))


def _drive_slow(lab: Lab, notes: dict[str, Any]) -> None:
    for target in lab.instances("inventory"):
        lab.set_faults(target, latency_ms=SLOW_LATENCY_MS)
    opened = False
    for _ in range(TRIP_BATCHES):
        answers = lab.together(TRIP_BATCH, lab.order)
        if any(_refused(a) for a in answers):
            opened = True
            break
        probe = lab.order()
        if _refused(probe):
            opened = True
            break
    notes["opened_by_traffic"] = opened
    for _ in range(REFUSED_ORDERS):
        lab.order()
    lab.restore()
    deadline = time.monotonic() + min(RECOVERY_LIMIT_S, lab.remaining_s() - 5)
    recovered = False
    while time.monotonic() < deadline:
        if lab.order().status == 201:
            recovered = True
            break
        time.sleep(0.5)
    notes["recovered"] = recovered
    if recovered:
        lab.order()


def _judge_slow(ev: Evidence) -> list[Check]:
    runs = judge.sagas(ev.traces)
    last = runs[-1] if runs else None
    return [
        *judge.check_breaker_cycle(ev.transitions.get(INVENTORY_BREAKER, [])),
        *judge.check_fast_rejections(ev.traces, INVENTORY_BREAKER),
        judge.Check(
            "the last order after recovery completed",
            last is not None and last.outcome == "completed",
            f"last saga: {last.outcome if last else 'none'}",
        ),
    ]


# -- no-breaker-cascade ------------------------------------------------------------------------

CASCADE_ORDERS = 8
WAITED_NS = 1_000_000_000
"""A call that waited for the slow inventory took at least this long (its timeout is 2 s)."""


def _drive_cascade(lab: Lab, notes: dict[str, Any]) -> None:
    for service in ("gateway", "orders"):
        for target in lab.instances(service):
            lab.set_faults(target, bypass_breakers=True)
    for target in lab.instances("inventory"):
        lab.set_faults(target, latency_ms=SLOW_LATENCY_MS)
    notes["answers"] = [a.status for a in lab.together(CASCADE_ORDERS, lab.order)]


def _judge_cascade(ev: Evidence) -> list[Check]:
    return [
        judge.check_traces_stored(ev.traces, ev.sent),
        *judge.check_cascade(ev.traces, "orders", "inventory", WAITED_NS),
        judge.Check(
            f"the {INVENTORY_BREAKER} breaker never opened",
            not any(to == "open" for _t, _f, to in ev.transitions.get(INVENTORY_BREAKER, [])),
            f"{len(ev.transitions.get(INVENTORY_BREAKER, []))} transitions",
        ),
    ]


# -- rate-limit-storm --------------------------------------------------------------------------

BURST = 80


def _drive_storm(lab: Lab, notes: dict[str, Any]) -> None:
    answers = lab.together(BURST, lambda: lab.request("GET", "/api/products"))
    limited = [a for a in answers if a.status == 429]
    notes["retry_after"] = sum(1 for a in limited if a.retry_after)
    notes["limited"] = len(limited)


def _judge_storm(ev: Evidence) -> list[Check]:
    return [
        judge.check_traces_stored(ev.traces, ev.sent),
        *judge.check_limited(ev.traces),
        judge.check_retry_after(ev.traces),
    ]


# -- inventory-instance-down -------------------------------------------------------------------

OUTAGE_ORDERS = 6
DEREGISTER_LIMIT_S = 10.0
"""A stopped instance deregisters as it exits; failing that, the registry drops it when its
heartbeats have been missing for the registry's TTL (6 s by default)."""


def _drive_instance_down(lab: Lab, notes: dict[str, Any]) -> None:
    instances = lab.instances("inventory")
    if len(instances) < 2:
        raise RuntimeError(f"this scenario needs two inventory instances; the registry lists {len(instances)}")
    down = instances[0]
    lab.stop(down)
    notes["stopped"] = down.instance_id
    notes["answers"] = [lab.order().status for _ in range(OUTAGE_ORDERS)]
    deadline = time.monotonic() + DEREGISTER_LIMIT_S
    while down.instance_id in {t.instance_id for t in lab.instances("inventory")} and time.monotonic() < deadline:
        time.sleep(0.2)
    notes["left_registry"] = down.instance_id not in {t.instance_id for t in lab.instances("inventory")}


def _judge_instance_down(ev: Evidence) -> list[Check]:
    runs = judge.sagas(ev.traces)
    serving = judge.instances_serving(ev.traces, "inventory")
    stopped = str(ev.notes.get("stopped", ""))
    others = sum(n for i, n in serving.items() if i != stopped)
    return [
        judge.check_traces_stored(ev.traces, ev.sent),
        judge.check_outcomes(runs, "completed", ev.sent),
        judge.Check(
            f"the stopped instance {stopped} handled nothing",
            bool(stopped) and serving.get(stopped, 0) == 0,
            f"{serving.get(stopped, 0)} requests handled by {stopped}",
        ),
        judge.Check("the other instance handled the calls", others > 0, f"{others} requests handled by the others"),
        judge.Check(
            f"the registry dropped the stopped instance {stopped}",
            ev.notes.get("left_registry") is True,
            "not listed after its stop" if ev.notes.get("left_registry") else "still listed after its stop",
        ),
    ]


# -- notifications-down ------------------------------------------------------------------------

NOTIFICATIONS = "notifications"
DOWN_ORDERS = 3
NOTIFICATIONS_BREAKER = "orders->notifications"
"""The relay's breaker: it may open while notifications is down (shown, not judged)."""
DOWN_FOR_S = 2.0
DELIVERY_LIMIT_S = 30.0


def _drive_notifications_down(lab: Lab, notes: dict[str, Any]) -> None:
    consumers = lab.instances("notifications")
    if not consumers:
        raise RuntimeError("the registry lists no notifications instance")
    for target in consumers:
        lab.stop(target)
    order_ids = [str(lab.order().body.get("order_id", "")) for _ in range(DOWN_ORDERS)]
    time.sleep(DOWN_FOR_S)  # the relay keeps trying meanwhile; the events stay in the outbox
    notes["back_ns"] = time.time_ns()
    lab.restore()
    deadline = time.monotonic() + min(DELIVERY_LIMIT_S, lab.remaining_s() - 5)
    while time.monotonic() < deadline:
        if all(lab.notified(consumers[0], order_id) for order_id in order_ids):
            notes["delivered"] = True
            return
        time.sleep(0.3)
    notes["delivered"] = False


def _judge_notifications_down(ev: Evidence) -> list[Check]:
    runs = judge.sagas(ev.traces)
    produced = judge.published_messages(ev.traces)
    consumed = judge.consumer_spans(ev.consumers, NOTIFICATIONS)
    return [
        judge.check_traces_stored(ev.traces, ev.sent),
        judge.check_outcomes(runs, "completed", ev.sent),
        *judge.check_outbox_waited(produced, consumed, int(ev.notes.get("back_ns", 0))),
    ]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "happy-order",
            "Happy order",
            "An order goes through every step of the order saga: products, payment, inventory, "
            "shipping, then commit. One trace follows it across the gateway and four services.",
            "Every order completes; its saga runs each step once, in order; one trace crosses 5+ services.",
            _drive_happy,
            _judge_happy,
        ),
        Scenario(
            "payment-declined",
            "Payment declined",
            "The payment service declines every card. The saga has already created the order, so it must "
            "undo exactly what it did, newest first (a saga has no rollback, only compensations).",
            "Every order is refused with 402; each saga compensates exactly its completed steps, in reverse.",
            _drive_declined,
            _judge_declined,
        ),
        Scenario(
            "inventory-slow",
            "Inventory slow",
            f"Inventory answers after {SLOW_LATENCY_MS / 1000:g} s, past the callers' timeout. The circuit "
            "breaker in front of it opens, so later calls fail at once instead of waiting; after its reset "
            "timeout one trial call goes through and, inventory being fast again, it closes.",
            f"The {INVENTORY_BREAKER} breaker opens; refused calls fail fast with no downstream span; "
            "it half-opens after its reset timeout and closes again.",
            _drive_slow,
            _judge_slow,
            breakers=(INVENTORY_BREAKER,),
        ),
        Scenario(
            "no-breaker-cascade",
            "No-breaker cascade",
            f"The same slow inventory ({SLOW_LATENCY_MS / 1000:g} s), with the breakers of the gateway and "
            f"orders bypassed, and {CASCADE_ORDERS} orders at once. Nothing fails fast: every call waits for "
            "its timeout, and the wait climbs up the chain to the gateway. This is why the breaker exists.",
            "No call is refused; every order's call to inventory waits for its timeout, and each caller up "
            "the chain waits at least as long.",
            _drive_cascade,
            _judge_cascade,
            breakers=(INVENTORY_BREAKER,),
        ),
        Scenario(
            "rate-limit-storm",
            "Rate-limit storm",
            f"A burst of {BURST} requests at once from one client. The gateway's rate limiter turns the "
            "excess away with 429 and Retry-After before any service sees it.",
            "Part of the burst gets 429 with Retry-After; limited requests never reach a service; nothing 5xx.",
            _drive_storm,
            _judge_storm,
        ),
        Scenario(
            "inventory-instance-down",
            "Inventory instance down",
            "One of the two inventory instances is stopped: its process ends, so it leaves the registry and "
            "its heartbeats stop. Service discovery fails over: a caller whose cached list still names it gets "
            "a refused connection and tries the other instance, so orders keep completing. The instance is "
            "started again when the experiment restores.",
            "Every order placed during the outage completes, served by the other instance; the registry drops "
            "the stopped one.",
            _drive_instance_down,
            _judge_instance_down,
        ),
        Scenario(
            "notifications-down",
            "Notifications down",
            f"The notifications service's process is stopped while {DOWN_ORDERS} orders are placed. Their events were "
            "written to the orders outbox in the same transaction as the orders, so they wait there; the relay "
            "keeps trying (its breaker to notifications may open meanwhile, and then lets a trial call through after "
            "its reset timeout) and delivers them all once notifications is back, and its inbox processes each once.",
            "Every order completes; every event waits in the outbox while notifications is down, is delivered "
            "once it is back, and is processed exactly once.",
            _drive_notifications_down,
            _judge_notifications_down,
            breakers=(NOTIFICATIONS_BREAKER,),
            follows_messages=NOTIFICATIONS,
        ),
    )
}
