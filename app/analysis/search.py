"""Search results as view models: the duration-over-time scatter plot and duration bars."""

from __future__ import annotations

from dataclasses import dataclass

from collectors.model import TraceSummary

PLOT_WIDTH = 960
PLOT_HEIGHT = 180
_MARGIN_LEFT = 64
_MARGIN_BOTTOM = 22
_MARGIN_TOP = 10
_MARGIN_RIGHT = 12


@dataclass(frozen=True, slots=True)
class Dot:
    """One trace on the scatter plot (SVG user units)."""

    trace: TraceSummary
    x: float
    y: float
    r: float


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis tick: position in SVG units and the value it labels (ns)."""

    pos: float
    value_ns: int


@dataclass(frozen=True, slots=True)
class Scatter:
    """The plot: dots, axis ticks and the drawing area; ``long_window`` when ticks need dates."""

    dots: list[Dot]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    long_window: bool = False
    width: int = PLOT_WIDTH
    height: int = PLOT_HEIGHT
    left: int = _MARGIN_LEFT
    top: int = _MARGIN_TOP
    right: int = PLOT_WIDTH - _MARGIN_RIGHT
    bottom: int = PLOT_HEIGHT - _MARGIN_BOTTOM


def scatter(traces: list[TraceSummary], start_ns: int, end_ns: int) -> Scatter:
    """Place traces by start time (x, over the searched window) and duration (y, from 0)."""
    left, right = _MARGIN_LEFT, PLOT_WIDTH - _MARGIN_RIGHT
    top, bottom = _MARGIN_TOP, PLOT_HEIGHT - _MARGIN_BOTTOM
    if traces:
        start_ns = min(start_ns, min(t.start_ns for t in traces))
        end_ns = max(end_ns, max(t.start_ns for t in traces))
    span = max(1, end_ns - start_ns)
    top_ns = max([t.duration_ns for t in traces] + [1])
    dots = []
    for t in traces:
        x = left + (t.start_ns - start_ns) / span * (right - left)
        y = bottom - t.duration_ns / top_ns * (bottom - top)
        r = 3 + min(5, t.span_count**0.5 / 3)
        dots.append(Dot(t, round(x, 1), round(y, 1), round(r, 1)))
    x_ticks = [Tick(round(left + i / 4 * (right - left), 1), start_ns + span * i // 4) for i in range(5)]
    y_ticks = [Tick(round(bottom - i / 2 * (bottom - top), 1), top_ns * i // 2) for i in range(3)]
    return Scatter(dots, x_ticks, y_ticks, long_window=span > 86_400_000_000_000)


def duration_fractions(traces: list[TraceSummary]) -> dict[str, float]:
    """Each trace's duration as a fraction of the longest one in the list (for bars)."""
    longest = max([t.duration_ns for t in traces] + [1])
    return {t.trace_id: t.duration_ns / longest for t in traces}
