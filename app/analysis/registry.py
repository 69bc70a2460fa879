"""Declared topology (the registry's ``depends_on``) beside the observed one (trace edges)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collectors.model import EdgeStats, InstanceActivity


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
    observed = {(e.parent, e.child) for e in edges if e.mode in ("sync", "async") and e.parent != e.child}
    known = {(i.service, i.instance_id) for i in instances}
    return Topology(
        instances=instances,
        declared=sorted(declared),
        observed=sorted(observed),
        undeclared=sorted(observed - declared),
        unseen=sorted(declared - observed),
        unregistered_activity=[a for key, a in sorted(by_instance.items()) if key not in known],
    )


def _heartbeat_text(value: object) -> str:
    """A heartbeat as UTC time: the registry sends seconds since the epoch; text passes through."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return str(value)
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return "" if value is None else str(value)
