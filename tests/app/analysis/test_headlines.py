"""The "right now" sentences, from the figures the pages show."""

from __future__ import annotations

from app.analysis.breakers import BreakerView
from app.analysis.graph import RateLimit
from app.analysis.headlines import breakers_headline, gateway_headline, registry_headline, sagas_headline
from app.analysis.registry import DiscoveryActivity, Instance, Topology
from app.analysis.stats import Red
from collectors.model import Failover


def red(count: int, errors: int = 0, throttled: int = 0) -> Red:
    ratio = (lambda n: n / count) if count else (lambda n: 0.0)
    return Red(count, errors, count / 900, ratio(errors), 0, 0, 0, 0, throttled, ratio(throttled))


def instance(service: str, instance_id: str, healthy: bool = True, requests: int = 1) -> Instance:
    return Instance(service, instance_id, "http://x", healthy, "", (), requests, 1 if requests else None)


def test_the_gateway_headline_says_what_its_limit_turned_away():
    limit = RateLimit(20, 1000)
    assert gateway_headline("gateway", red(80, 2, 30), limit) == (
        "gateway served 80 requests (5.3/min), 30 throttled (429) by its limit of 20 per 1 s, 37.5%, 2 failed."
    )
    assert gateway_headline("gw", red(5), limit) == (
        "gw served 5 requests (0.33/min), none throttled (its limit is 20 per 1 s), 0 failed."
    )
    assert gateway_headline("gw", red(0), None) == "gw served no request in this window."
    assert gateway_headline("gw", red(1800), None) == "gw served 1800 requests (2.0/s), none throttled, 0 failed."


def test_the_registry_headline_names_unhealthy_idle_and_undeclared():
    topo = Topology(
        instances=[
            instance("inventory", "i-1", healthy=False, requests=0),
            instance("inventory", "i-2"),
            instance("orders", "o-1", requests=0),
        ],
        declared=[("orders", "inventory"), ("orders", "users")],
        observed=[("gateway", "orders"), ("orders", "inventory")],
        undeclared=[("gateway", "orders")],
        unseen=[("orders", "users")],
        unregistered_activity=[],
    )
    assert registry_headline(topo, None) == (
        "The registry lists 3 instances, 1 unhealthy: inventory/i-1. orders/o-1 served no request in the window. "
        "Traces show 1 call path nobody declared: gateway → orders. 1 declared dependency never seen in traces."
    )
    healthy = Topology([instance("a", "a-1")], [], [], [], [], [])
    assert registry_headline(healthy, None) == "The registry lists 1 instance, all healthy."
    assert registry_headline(Topology([], [], [], [], [], []), None).startswith("The registry knows no instance")


def test_the_registry_headline_ends_with_the_latest_failover():
    moved = [
        Failover("orders", "inventory-1", "refused", 2, "ab" * 16, "cd" * 8, "inventory", "inventory-2"),
        Failover("orders", "inventory-1", "refused", 1, "ab" * 16, "ef" * 8, "inventory", ""),
    ]
    activity = DiscoveryActivity([], moved)
    assert registry_headline(Topology([], [], [], [], [], []), "down", activity) == (
        "The registry did not answer, so only the traffic seen in traces shows. "
        "2 calls failed over in the window; the latest: orders left inventory-1 for inventory-2."
    )
    assert registry_headline(Topology([], [], [], [], [], []), "down", DiscoveryActivity([], moved[1:])).endswith(
        " A call failed over in the window; the latest: orders left inventory-1."
    )


def test_a_long_list_of_open_breakers_is_cut_after_three():
    views = [BreakerView(f"b{i}", "orders", "x", "open", None, None, rejected_count=i) for i in range(5)]
    assert breakers_headline(views) == (
        "5 breakers are open: b0 (0 calls refused), b1 (1 call refused), b2 (2 calls refused) and 2 more; "
        "calls to them fail at once."
    )
    half = [
        BreakerView("h", "orders", "x", "half_open", None, None),
        BreakerView("c", "orders", "x", "closed", None, None),
    ]
    assert breakers_headline(half) == "1 breaker is half-open, letting a trial call through: h. 1 other is closed."
    assert breakers_headline([]).startswith("No breaker reported in this window")


def test_no_saga_yet_says_what_makes_one():
    counts = [("completed", 0), ("compensated", 0), ("failed", 0), ("running", 0)]
    assert sagas_headline(counts, []).startswith("No saga yet: spans with saga.name and saga.id")
