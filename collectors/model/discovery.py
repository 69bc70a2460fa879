"""Read model of service discovery: a fail-over, when a call gave up on one instance."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Failover:
    """One ``discovery.failover`` event: ``service``'s call to ``callee`` left instance
    ``instance_id`` (which did not answer, for ``reason``) and went on to the next
    instance, ``next_instance_id`` (empty when none was left, or not recorded)."""

    service: str
    instance_id: str
    reason: str
    time_ns: int
    trace_id: str
    span_id: str
    callee: str = ""
    next_instance_id: str = ""
