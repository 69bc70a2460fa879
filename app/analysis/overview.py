"""The landing page: each service's health, the pattern moments of the window (open
breakers, compensated sagas, fail-overs) and what to try next in the chaos lab."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.analysis.breakers import BreakerView
from app.analysis.sagas import failed_action, saga_reason
from app.analysis.stats import Red, health, merge, red
from collectors.model import Failover, OperationTraffic, SagaInstance, SagaStepSpan

TROUBLED_STATES = ("open", "half_open")
"""Breaker states the overview lists: refusing calls, or letting one trial call through."""


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """One service's requests in the window: RED figures and a health word."""

    name: str
    red: Red
    health: str


@dataclass(frozen=True, slots=True)
class Compensation:
    """A saga that did not complete: which step failed, and why."""

    saga: SagaInstance
    failed_step: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Moments:
    """What the patterns did in the window, newest first in each list."""

    breakers: list[BreakerView]
    compensations: list[Compensation]
    failovers: list[Failover]

    @property
    def quiet(self) -> bool:
        """Whether nothing happened worth listing."""
        return not (self.breakers or self.compensations or self.failovers)


def service_health(
    services: Iterable[str], operations: Iterable[OperationTraffic], window_ns: int
) -> list[ServiceHealth]:
    """Every service, by name, with the RED figures of the requests it served in the
    window (its entry spans, as the service graph counts them); ``idle`` with none."""
    per_service: dict[str, list[OperationTraffic]] = defaultdict(list)
    for op in operations:
        per_service[op.service].append(op)
    out = []
    for name in sorted(set(services) | set(per_service)):
        ops = per_service.get(name, [])
        r = red(
            sum(o.request_count for o in ops),
            sum(o.error_count for o in ops),
            sum(o.duration_sum_ns for o in ops),
            merge([o.histogram for o in ops]),
            window_ns,
            sum(o.throttled_count for o in ops),
        )
        out.append(ServiceHealth(name, r, health(r.error_rate, r.count)))
    return out


def troubled_breakers(views: Iterable[BreakerView]) -> list[BreakerView]:
    """Breakers open or half-open at the end of the window, open ones first."""
    found = [v for v in views if v.state in TROUBLED_STATES]
    return sorted(found, key=lambda v: (TROUBLED_STATES.index(v.state), v.name, v.caller))


def recent_compensations(
    sagas: Iterable[SagaInstance], steps: Mapping[str, Sequence[SagaStepSpan]], since_ns: int, limit: int
) -> list[Compensation]:
    """Sagas that started since ``since_ns`` and were compensated (or failed), newest first."""
    found = sorted(
        (s for s in sagas if s.start_ns >= since_ns and s.outcome in ("compensated", "failed")),
        key=lambda s: (s.start_ns, s.saga_id),
        reverse=True,
    )
    out = []
    for s in found[:limit]:
        own = steps.get(s.saga_id, ())
        failed = failed_action(own)
        out.append(Compensation(s, failed.step if failed else None, saga_reason(s, own)))
    return out
