"""Read models of service traffic: latency histograms, edge, operation and instance stats.

The store keeps these per minute at ingest and sums them over a window when asked; the
service graph, the service and edge pages and the registry page read them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

STATS_BUCKET_NS = 60 * 1_000_000_000
"""Traffic is kept per minute: a window's figures are exact to the minute."""

HISTOGRAM_BUCKETS = 40
"""Buckets of a latency histogram (the stats tables' columns ``h00``..``h39``)."""

HISTOGRAM_BOUNDS_NS = tuple(int(50_000 * 2 ** (i / 2)) for i in range(HISTOGRAM_BUCKETS - 1))
"""Upper bound (exclusive) of each histogram bucket but the last, which is unbounded:
50µs times powers of √2, up to about 26s, so a percentile is within about 20%."""


def histogram_index(duration_ns: int) -> int:
    """The histogram bucket a duration falls in."""
    return bisect.bisect_right(HISTOGRAM_BOUNDS_NS, duration_ns)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Latency counts per bucket; ``bounds_ns[i]`` is the exclusive upper edge of bucket i."""

    counts: tuple[int, ...]
    max_ns: int = 0
    bounds_ns: tuple[int, ...] = HISTOGRAM_BOUNDS_NS


@dataclass(frozen=True, slots=True)
class EdgeStats:
    """Calls from ``parent`` to ``child`` in a window.

    ``mode`` says how the calls were made: ``sync`` (a client or caller span and the
    server span it parents), ``async`` (a producer and a consumer span), ``lookup`` (a
    registry lookup: spans with ``discovery.service``), or, for a peer named by a client or
    producer span's attributes, ``database``, ``queue``, ``peer`` or ``peer-lookup``.
    ``throttled_count`` counts the calls answered 429 (rate limited), which are not errors;
    a 4xx the callee answered is not an error of the call either (see
    :func:`collectors.store.patterns.conventions.judge_call`).
    """

    parent: str
    child: str
    mode: str
    call_count: int
    error_count: int
    duration_sum_ns: int
    histogram: Histogram
    throttled_count: int = 0


@dataclass(frozen=True, slots=True)
class OperationTraffic:
    """Requests one operation of one service served (its entry spans: server, consumer or
    root) in a window; ``throttled_count`` counts those answered 429, which are not errors.
    ``rate_limit`` requests per ``rate_limit_window_ms`` is the limit the service's spans
    record (``rate_limit.limit``, ``rate_limit.window_ms``), None when they record none."""

    service: str
    name: str
    request_count: int
    error_count: int
    duration_sum_ns: int
    histogram: Histogram
    throttled_count: int = 0
    rate_limit: int | None = None
    rate_limit_window_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceMinute:
    """Requests one service served in one minute (from ``bucket_ns``, STATS_BUCKET_NS long),
    all operations summed."""

    service: str
    bucket_ns: int
    request_count: int
    error_count: int
    duration_sum_ns: int
    histogram: Histogram
    throttled_count: int = 0


@dataclass(frozen=True, slots=True)
class InstanceActivity:
    """Requests an instance (``service.instance.id``) served in a window, and when last."""

    service: str
    instance_id: str
    request_count: int
    error_count: int
    last_seen_ns: int
