"""Rates, error ratios and latency percentiles (RED) from per-minute histograms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from collectors.model import Histogram

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, slots=True)
class Red:
    """Rate, errors, duration of one node, edge or operation over a window, and the
    requests throttled (answered 429), which are counted apart from the errors."""

    count: int
    error_count: int
    rate_per_s: float
    error_rate: float
    p50_ns: int
    p95_ns: int
    p99_ns: int
    mean_ns: int
    throttled_count: int = 0
    throttled_rate: float = 0.0


def percentile(hist: Histogram, q: float) -> int:
    """The q-th percentile (0-100) of a histogram in nanoseconds, 0 when empty.

    Interpolates geometrically inside the bucket that holds the rank and never answers
    more than the largest duration seen.
    """
    total = sum(hist.counts)
    if total == 0:
        return 0
    rank = max(1.0, q / 100 * total)
    seen = 0
    for i, n in enumerate(hist.counts):
        if n and seen + n >= rank:
            low = hist.bounds_ns[i - 1] if i > 0 else hist.bounds_ns[0] / 2
            high = hist.bounds_ns[i] if i < len(hist.bounds_ns) else max(hist.max_ns, low)
            fraction = (rank - seen) / n
            value = low * (high / low) ** fraction if low > 0 else high * fraction
            return int(min(value, hist.max_ns) if hist.max_ns else value)
        seen += n
    return hist.max_ns


def merge(histograms: Sequence[Histogram]) -> Histogram:
    """Sum histograms with the same bounds."""
    if not histograms:
        return Histogram(())
    counts = [0] * len(histograms[0].counts)
    for h in histograms:
        for i, n in enumerate(h.counts):
            counts[i] += n
    return Histogram(tuple(counts), max(h.max_ns for h in histograms), histograms[0].bounds_ns)


def red(
    count: int, error_count: int, duration_sum_ns: int, hist: Histogram, window_ns: int, throttled_count: int = 0
) -> Red:
    """RED figures for ``count`` requests over a window of ``window_ns``, of which
    ``error_count`` failed and ``throttled_count`` were throttled."""
    seconds = max(window_ns, 1) / 1e9
    return Red(
        count=count,
        error_count=error_count,
        rate_per_s=count / seconds,
        error_rate=error_count / count if count else 0.0,
        p50_ns=percentile(hist, 50),
        p95_ns=percentile(hist, 95),
        p99_ns=percentile(hist, 99),
        mean_ns=duration_sum_ns // count if count else 0,
        throttled_count=throttled_count,
        throttled_rate=throttled_count / count if count else 0.0,
    )


def health(error_rate: float, count: int) -> str:
    """``idle``, ``ok``, ``warn`` (1% or more errors) or ``bad`` (5% or more)."""
    if count == 0:
        return "idle"
    if error_rate >= 0.05:
        return "bad"
    if error_rate >= 0.01:
        return "warn"
    return "ok"


def sparkline(values: Sequence[float], width: float = 160, height: float = 32) -> str:
    """SVG polyline points for values scaled into a width x height box (numbers only)."""
    if not values:
        return ""
    top = max(values) or 1.0
    step = width / max(len(values) - 1, 1)
    points = []
    for i, v in enumerate(values):
        y = height - (v / top) * (height - 2) - 1 if math.isfinite(v) else height
        points.append(f"{i * step:.1f},{y:.1f}")
    return " ".join(points)
