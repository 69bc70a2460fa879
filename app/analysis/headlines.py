"""The "right now" sentence of each pattern page's explanation: what to look for on the
page at this moment, computed from the same figures the page shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from app.analysis.breakers import BreakerView
from app.analysis.graph import RateLimit, ServiceGraph
from app.analysis.registry import DiscoveryActivity, Topology
from app.analysis.stats import Red
from collectors.model import InstanceActivity

NAMES_LISTED = 3
"""Names spelled out in a sentence before "and N more"."""


def services_headline(graph: ServiceGraph) -> str:
    """How many services call each other, the one with the most errors, the longest chain."""
    services = [n for n in graph.nodes if n.kind == "service"]
    if not services:
        return (
            "No calls between services in this window: start the demo (spyglass demo) or send spans, "
            "and the graph draws itself."
        )
    paired = [e for e in graph.edges if e.mode in ("sync", "async")]
    asynchronous = sum(1 for e in paired if e.mode == "async")
    peers = _count(len(graph.nodes) - len(services), "database or peer", "databases or peers")
    lookups = sum(1 for e in graph.edges if e.is_lookup)
    looked_up = f", and {_count(lookups, 'path')} of registry lookups (dotted)" if lookups else ""
    parts = [
        f"{_count(len(services), 'service')} and {peers}, "
        f"joined by {_count(len(paired), 'call path')} ({asynchronous} asynchronous, dashed){looked_up}."
    ]
    worst = max(services, key=lambda n: (n.red.error_rate, n.red.count))
    if worst.red.error_count:
        parts.append(
            f"{worst.name} has the most errors: {_percent(worst.red.error_rate)} of its {worst.red.count} requests."
        )
    else:
        parts.append("No service answered with an error.")
    throttled = [n for n in services if n.red.throttled_count]
    if throttled:
        parts.append(_names("throttled requests", [f"{n.name} ({n.red.throttled_count})" for n in throttled]) + ".")
    if len(graph.longest_chain) > 2:
        chain = " → ".join(graph.longest_chain)
        parts.append(f"The longest synchronous chain has {len(graph.longest_chain) - 1} hops: {chain}.")
    return " ".join(parts)


def breakers_headline(views: Sequence[BreakerView]) -> str:
    """Which breakers are open, half-open or closed, and what they refused."""
    if not views:
        return "No breaker reported in this window: calls made through one carry circuit_breaker.name."
    by_state: dict[str, list[BreakerView]] = defaultdict(list)
    for v in views:
        by_state[v.state].append(v)
    parts = []
    opened = by_state.get("open", [])
    if opened:
        described = [f"{v.name} ({_count(v.rejected_count, 'call')} refused)" for v in opened]
        parts.append(f"{_are(len(opened), 'breaker')} open: {_list(described)}; calls to them fail at once.")
    half = by_state.get("half_open", [])
    if half:
        names = _list([v.name for v in half])
        parts.append(f"{_are(len(half), 'breaker')} half-open, letting a trial call through: {names}.")
    closed = by_state.get("closed", [])
    if closed and not opened and not half:
        failures = sum(v.failure_count for v in closed)
        which = f"The one breaker, {closed[0].name}, is" if len(closed) == 1 else f"All {len(closed)} breakers are"
        counted = f" ({_count(failures, 'failure')} counted in the window)." if failures else ", none failed."
        parts.append(f"{which} closed: calls go through{counted}")
    elif closed:
        parts.append(f"{_are(len(closed), 'other')} closed.")
    others = [v for v in views if v.state not in ("open", "half_open", "closed")]
    if others:
        names = _list([v.name for v in others])
        parts.append(f"{_count(len(others), 'breaker')} in a state Spyglass does not know: {names}.")
    opened_in_window = sum(1 for v in views for m in v.marks if m.transition.to_state == "open")
    if opened_in_window:
        times = {1: "once", 2: "twice"}.get(opened_in_window, f"{opened_in_window} times")
        parts.append(f"Breakers opened {times} in the window.")
    return " ".join(parts)


def sagas_headline(counts: Sequence[tuple[str, int]], rows: Sequence[dict[str, Any]]) -> str:
    """How the sagas ended, and the latest one that did not complete."""
    total = sum(n for _, n in counts)
    if not total:
        return "No saga yet: spans with saga.name and saga.id appear here, one row per saga."
    by = dict(counts)
    parts = [
        f"Of {_count(total, 'saga')}, {by.get('completed', 0)} completed, {by.get('compensated', 0)} "
        f"{'was' if by.get('compensated', 0) == 1 else 'were'} compensated, {by.get('failed', 0)} failed "
        f"(a compensation itself failed) and {by.get('running', 0)} {'is' if by.get('running', 0) == 1 else 'are'} "
        "still running."
    ]
    latest = next((r for r in rows if r["saga"].outcome in ("compensated", "failed")), None)
    if latest is not None:
        saga = latest["saga"]
        where = f" after step {latest['failed_step']} failed" if latest.get("failed_step") else ""
        parts.append(f"The latest listed that did not complete: {saga.saga_id}, {saga.outcome}{where}.")
    return " ".join(parts)


def traffic_headline(activity: Iterable[InstanceActivity]) -> str:
    """Which instances served requests in the window (the part of the registry page that
    needs no registry), services with several instances first."""
    per_service: dict[str, list[InstanceActivity]] = defaultdict(list)
    for a in activity:
        per_service[a.service].append(a)
    if not per_service:
        return "No instance served a request in this window (spans carry service.instance.id on their resource)."
    shared = sorted((s for s, found in per_service.items() if len(found) > 1))
    instances = sum(len(found) for found in per_service.values())
    parts = [f"{_count(instances, 'instance')} of {_count(len(per_service), 'service')} served requests."]
    for service in shared[:NAMES_LISTED]:
        spread = ", ".join(f"{a.instance_id} ({a.request_count})" for a in per_service[service])
        parts.append(f"{service} spread its requests over {len(per_service[service])}: {spread}.")
    return " ".join(parts)


def registry_headline(topology: Topology, problem: str | None, discovery: DiscoveryActivity | None = None) -> str:
    """What the registry says against what the traces show, and the latest fail-over."""
    moved = _failover_sentence(discovery)
    if problem is not None:
        return "The registry did not answer, so only the traffic seen in traces shows." + moved
    if not topology.instances:
        return "The registry knows no instance: services register themselves when they start." + moved
    unhealthy = [f"{i.service}/{i.instance_id}" for i in topology.instances if not i.healthy]
    idle = [f"{i.service}/{i.instance_id}" for i in topology.instances if i.healthy and not i.request_count]
    parts = [f"The registry lists {_count(len(topology.instances), 'instance')}"]
    parts[0] += f", {len(unhealthy)} unhealthy: {_list(unhealthy)}." if unhealthy else ", all healthy."
    if idle:
        parts.append(f"{_list(idle)} served no request in the window.")
    if topology.undeclared:
        calls = [f"{p} → {c}" for p, c in topology.undeclared]
        parts.append(f"Traces show {_count(len(calls), 'call path')} nobody declared: {_list(calls)}.")
    if topology.unseen:
        unseen = _count(len(topology.unseen), "declared dependency", "declared dependencies")
        parts.append(f"{unseen} never seen in traces.")
    return " ".join(parts) + moved


def _failover_sentence(discovery: DiscoveryActivity | None) -> str:
    if discovery is None or not discovery.failovers:
        return ""
    latest = discovery.failovers[0]
    went = f" for {latest.next_instance_id}" if latest.next_instance_id else ""
    count = len(discovery.failovers)
    many = f"{count} calls failed over" if count > 1 else "A call failed over"
    return f" {many} in the window; the latest: {latest.service} left {latest.instance_id}{went}."


def gateway_headline(name: str, total: Red, limit: RateLimit | None) -> str:
    """What the gateway let through, refused and failed in the window."""
    if not total.count:
        return f"{name} served no request in this window."
    parts = [f"{name} served {_count(total.count, 'request')} ({_rate(total.rate_per_s)})"]
    if total.throttled_count:
        by = f" by its limit of {limit.text}" if limit is not None else ""
        parts.append(f"{total.throttled_count} throttled (429){by}, {_percent(total.throttled_rate)}")
    else:
        parts.append("none throttled" + (f" (its limit is {limit.text})" if limit is not None else ""))
    parts.append(f"{total.error_count} failed")
    return ", ".join(parts) + "."


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _are(n: int, word: str) -> str:
    return f"{n} {word} is" if n == 1 else f"{n} {word}s are"


def _rate(per_s: float) -> str:
    """Requests per second, or per minute below one a second (0.00/s says nothing)."""
    return f"{per_s:.1f}/s" if per_s >= 1 else f"{per_s * 60:.2g}/min"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def _list(names: Sequence[str]) -> str:
    shown = list(names[:NAMES_LISTED])
    rest = len(names) - len(shown)
    return ", ".join(shown) + (f" and {rest} more" if rest else "")


def _names(what: str, names: Sequence[str]) -> str:
    return f"{what.capitalize()}: {_list(names)}"
