"""Declared topology (the registry's ``depends_on``) beside the observed one (trace edges),
and discovery as traces show it: lookups per calling service and the latest fail-overs.

Discovery follows docs/conventions.md ("Service discovery"): a lookup that asks the
registry is a call ``caller -> registry``, and a fail-over is a ``discovery.failover``
event on the span of the call that failed over (kept at ingest, one row each).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collectors.model import EdgeStats, Failover, InstanceActivity

REGISTRY_SERVICE = "registry"
"""The registry's ``service.name``: calls to it are lookups, not declared dependencies."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance the registry knows, and the traffic it received in the window."""

    service: str
    instance_id: str
    url: str
    healthy: bool
    last_heartbeat: str
    depends_on: tuple[str, ...]
    request_count: int
    last_seen_ns: int | None


@dataclass(frozen=True, slots=True)
class Topology:
    """Both topologies and their differences, each a sorted list of (caller, callee)."""

    instances: list[Instance]
    declared: list[tuple[str, str]]
    observed: list[tuple[str, str]]
    undeclared: list[tuple[str, str]]
    unseen: list[tuple[str, str]]
    unregistered_activity: list[InstanceActivity]


@dataclass(frozen=True, slots=True)
class Lookups:
    """The registry lookups one service made in the window (its discovery cache misses)."""

    caller: str
    count: int
    error_count: int


def parse_instances(doc: Any) -> list[dict[str, Any]]:
    """The instance objects of a ``GET /instances`` answer (a list, or an object holding
    one under ``instances``); raises ValueError for any other shape."""
    items = doc.get("instances") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError("expected a JSON list of instance objects")
    return items


def compare_topology(
    raw_instances: Sequence[Mapping[str, Any]], edges: Iterable[EdgeStats], activity: Iterable[InstanceActivity]
) -> Topology:
    """Match registry instances to observed traffic and declared dependencies to edges.

    Observed edges are calls between services (synchronous or asynchronous), not calls to
    uninstrumented peers; a declared dependency counts as seen if either kind occurred.
    Lookups (calls to the registry) are how callers find their callees, not dependencies
    an instance declares: :func:`lookups_by_caller` counts them apart.
    """
    by_instance = {(a.service, a.instance_id): a for a in activity}
    instances = []
    declared: set[tuple[str, str]] = set()
    for raw in raw_instances:
        service = str(raw.get("service", ""))
        instance_id = str(raw.get("instance_id", raw.get("id", "")))
        deps = raw.get("depends_on") or []
        deps = tuple(str(d) for d in deps) if isinstance(deps, list) else ()
        declared.update((service, d) for d in deps)
        seen = by_instance.get((service, instance_id))
        instances.append(
            Instance(
                service=service,
                instance_id=instance_id,
                url=str(raw.get("url", "")),
                healthy=raw.get("healthy") is True,
                last_heartbeat=_heartbeat_text(raw.get("last_heartbeat")),
                depends_on=deps,
                request_count=seen.request_count if seen else 0,
                last_seen_ns=seen.last_seen_ns if seen else None,
            )
        )
    instances.sort(key=lambda i: (i.service, i.instance_id))
    observed = {
        (e.parent, e.child)
        for e in edges
        if e.mode in ("sync", "async") and e.parent != e.child and e.child != REGISTRY_SERVICE
    }
    known = {(i.service, i.instance_id) for i in instances}
    return Topology(
        instances=instances,
        declared=sorted(declared),
        observed=sorted(observed),
        undeclared=sorted(observed - declared),
        unseen=sorted(declared - observed),
        unregistered_activity=[a for key, a in sorted(by_instance.items()) if key not in known],
    )


@dataclass(frozen=True, slots=True)
class DiscoveryActivity:
    """What discovery did in a window: lookups per caller and the latest fail-overs."""

    lookups: list[Lookups]
    failovers: list[Failover]


def discovery_activity(edges: Iterable[EdgeStats], failovers: Iterable[Failover]) -> DiscoveryActivity:
    """Lookups per caller from the edges, beside the latest fail-overs (newest first)."""
    return DiscoveryActivity(lookups_by_caller(edges), list(failovers))


def lookups_by_caller(edges: Iterable[EdgeStats]) -> list[Lookups]:
    """Registry lookups per calling service, most first. A lookup is counted once: from the
    pair of the caller's lookup span and the registry's span when both were traced (mode
    ``lookup``; ``sync`` in minutes stored before lookups had a mode), else from the lookup
    span's ``peer.service`` alone (``peer-lookup``, or ``peer``)."""
    modes: dict[str, dict[str, tuple[int, int]]] = {}
    for e in edges:
        if e.child == REGISTRY_SERVICE and e.parent != REGISTRY_SERVICE:
            modes.setdefault(e.parent, {})[e.mode] = (e.call_count, e.error_count)
    found = []
    for caller, counts in modes.items():
        count, errors = (
            counts.get("lookup")
            or counts.get("sync")
            or counts.get("peer-lookup")
            or counts.get("peer")
            or max(counts.values())
        )
        found.append(Lookups(caller, count, errors))
    return sorted(found, key=lambda lk: (-lk.count, lk.caller))


def _heartbeat_text(value: object) -> str:
    """A heartbeat as UTC time: the registry sends seconds since the epoch; text passes through."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return str(value)
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return "" if value is None else str(value)
