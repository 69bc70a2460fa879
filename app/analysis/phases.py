"""An experiment's affected services, its three phases (before, during, after) and each
affected service's RED in each.

The affected services are those its traces touched, from where its requests entered
outwards. Before is the ``span_ns`` before the run started, during is the run up to the
moment its faults were restored, after is the ``span_ns`` after that moment. Figures come from the
service's entry (SERVER) spans that started in the phase: request rate, error percentage
and the p50/p99 latency (nearest rank over the exact durations).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from collectors.model import KIND_CLIENT, KIND_PRODUCER, Span

NS = 1_000_000_000
DISCOVERY_SERVICE = "discovery.service"
PEER_SERVICE = "peer.service"
"""On a discovery lookup's CLIENT span: the service looked up (docs/conventions.md)."""
PHASES = ("before", "during", "after")


@dataclass(frozen=True, slots=True)
class Phase:
    """One window of an experiment; ``complete`` is false while it has not ended yet."""

    name: str
    start_ns: int
    end_ns: int
    complete: bool


@dataclass(frozen=True, slots=True)
class PhaseRed:
    """A service's figures in one phase."""

    phase: str
    complete: bool
    count: int
    rate_per_s: float
    error_pct: float
    p50_ms: float
    p99_ms: float


def affected_services(
    traces: Mapping[str, Sequence[Span]],
    changed: Iterable[str] = (),
    followers: Mapping[str, Sequence[Span]] | None = None,
) -> list[str]:
    """The services with a span in ``traces`` or ``followers``, ordered as a request meets
    them: by hops from the trace's root (the entry first, then what it calls, ...); among
    services as many hops away, those in ``changed`` (the experiment changed their faults)
    first, then the one reached first. ``followers`` are traces that consumers of the
    messages published in ``traces`` started: their root counts as one hop past the
    nearest PRODUCER span. A CLIENT span's ``peer.service`` counts as met one hop further
    (its callee's span may be missing: a call that timed out). Services met only through a discovery lookup (the registry:
    spans under a CLIENT span with ``discovery.service``) follow those the requests
    called; changed services no trace touched come last, by name."""
    faulted = set(changed)
    hops: dict[str, int] = {}
    first: dict[str, int] = {}
    called: set[str] = set()
    producer_hops: list[int] = []

    def meet(service: str, depth: int, start_ns: int, looked_up: bool) -> None:
        hops[service] = min(hops.get(service, depth), depth)
        first[service] = min(first.get(service, start_ns), start_ns)
        if not looked_up:
            called.add(service)

    def count(spans: Sequence[Span], offset: int) -> None:
        for span, depth, looked_up in _service_hops(spans):
            meet(span.service, depth + offset, span.start_ns, looked_up)
            peer = span.attributes.get(PEER_SERVICE)
            if span.kind == KIND_CLIENT and isinstance(peer, str) and peer and peer != span.service:
                # The callee, even if its own span is missing (a call that timed out).
                meet(peer, depth + offset + 1, span.start_ns, looked_up)
            if span.kind == KIND_PRODUCER:
                producer_hops.append(depth + offset)

    for spans in traces.values():
        count(spans, 0)
    offset = 1 + min(producer_hops, default=max(hops.values(), default=0))
    for spans in (followers or {}).values():
        count(spans, offset)
    touched = sorted(hops, key=lambda s: (s not in called, hops[s], s not in faulted, first[s], s))
    return touched + sorted(faulted - set(touched))


def _service_hops(spans: Sequence[Span]) -> list[tuple[Span, int, bool]]:
    """Each span with its number of service changes on the way up to its trace's root (a
    span whose parent is not in the trace counts as a root), and whether it is, or lies
    under, a discovery lookup."""
    by_id = {s.span_id: s for s in spans}
    depth: dict[str, int] = {}
    lookup: dict[str, bool] = {}
    for span in spans:
        chain: list[Span] = []
        seen: set[str] = set()
        current: Span | None = span
        while current is not None and current.span_id not in depth and current.span_id not in seen:
            chain.append(current)
            seen.add(current.span_id)
            current = by_id.get(current.parent_span_id)
        for link in reversed(chain):
            parent = by_id.get(link.parent_span_id)
            is_lookup = link.kind == KIND_CLIENT and DISCOVERY_SERVICE in link.attributes
            if parent is None or parent.span_id not in depth:
                depth[link.span_id] = 0
                lookup[link.span_id] = is_lookup
            else:
                depth[link.span_id] = depth[parent.span_id] + (parent.service != link.service)
                lookup[link.span_id] = is_lookup or lookup[parent.span_id]
    return [(span, depth[span.span_id], lookup[span.span_id]) for span in spans]


def phases(started_ns: int, restored_ns: int, now_ns: int, span_ns: int) -> list[Phase]:
    """Before, during and after of a run that started at ``started_ns`` and restored its
    faults at ``restored_ns``, as seen at ``now_ns``."""
    restored_ns = max(restored_ns, started_ns)
    return [
        Phase("before", started_ns - span_ns, started_ns, True),
        Phase("during", started_ns, restored_ns, True),
        Phase("after", restored_ns, restored_ns + span_ns, now_ns >= restored_ns + span_ns),
    ]


def nearest_rank(sorted_values: Sequence[int], q: float) -> int:
    """The q-th percentile (0-100) of ascending values by nearest rank; 0 when empty."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def red_by_phase(
    calls: Iterable[tuple[str, int, int, bool]], services: Sequence[str], windows: Sequence[Phase]
) -> dict[str, list[PhaseRed]]:
    """For each service, its figures in each window, from (service, start_ns, duration_ns,
    failed) entry calls."""
    grouped: dict[tuple[str, str], list[tuple[int, bool]]] = {}
    for service, start_ns, duration_ns, failed in calls:
        for window in windows:
            if window.start_ns <= start_ns < window.end_ns:
                grouped.setdefault((service, window.name), []).append((duration_ns, failed))
    result: dict[str, list[PhaseRed]] = {}
    for service in services:
        rows = []
        for window in windows:
            found = grouped.get((service, window.name), [])
            durations = sorted(d for d, _f in found)
            errors = sum(1 for _d, f in found if f)
            seconds = max(window.end_ns - window.start_ns, 1) / NS
            rows.append(
                PhaseRed(
                    phase=window.name,
                    complete=window.complete,
                    count=len(found),
                    rate_per_s=len(found) / seconds,
                    error_pct=100.0 * errors / len(found) if found else 0.0,
                    p50_ms=nearest_rank(durations, 50) / 1e6,
                    p99_ms=nearest_rank(durations, 99) / 1e6,
                )
            )
        result[service] = rows
    return result

