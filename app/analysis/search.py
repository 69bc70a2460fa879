"""Search results as view models: the duration-over-time scatter plot and duration bars.

The scatter's time axis fits the results (their first to last start, padded), not the
searched window, so minutes of data spread across the plot; ticks fall on round times
(1 s, 5 s, 1 min, 15 min, 1 h ...) with labels as short as their step allows. Positions
are percentages of the plot box, so the page lays it out at any width with readable text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collectors.model import TraceSummary

MS = 1_000_000
S = 1_000 * MS
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR
TIME_STEPS = (
    *(n * MS for n in (1, 2, 5, 10, 20, 50, 100, 200, 500)),
    *(n * S for n in (1, 2, 5, 10, 15, 30)),
    *(n * MIN for n in (1, 2, 5, 10, 15, 30)),
    *(n * HOUR for n in (1, 2, 3, 6, 12)),
    *(n * DAY for n in (1, 2, 7, 14, 30, 90, 365)),
)
"""Round steps between time ticks, smallest first."""
TIME_TICKS = 6
"""About how many time ticks the axis aims for (never more than TIME_TICKS + 1)."""
PAD = 0.04
"""Share of the results' time spread added on each side, so no dot sits on an edge."""
MIN_PAD_NS = S
"""Padding on each side at least: one result, or results within a second, still get an axis."""
DURATION_TICKS = 3


@dataclass(frozen=True, slots=True)
class Dot:
    """One trace on the scatter plot: ``x`` and ``y`` in percent of the plot box
    (from the left and from the bottom), ``r`` its radius in pixels."""

    trace: TraceSummary
    x: float
    y: float
    r: float


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis tick: position in percent along its axis, the value (ns) and its label."""

    pos: float
    value_ns: int
    label: str


@dataclass(frozen=True, slots=True)
class Scatter:
    """The plot: dots, the two axes' ticks and the time domain they span (ns).

    ``day`` names the UTC date of the domain's start, for the axis caption; ticks
    carry the date themselves where the domain crosses midnight.
    """

    dots: list[Dot]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    start_ns: int
    end_ns: int
    day: str

    @property
    def start_ms(self) -> int:
        """The domain's start in milliseconds (what page scripts can hold exactly)."""
        return self.start_ns // MS

    @property
    def end_ms(self) -> int:
        """The domain's end in milliseconds, rounded up."""
        return -(-self.end_ns // MS)


def time_domain(starts: list[int]) -> tuple[int, int]:
    """The x domain for these start times: first to last, padded on each side by PAD of
    the spread and at least MIN_PAD_NS."""
    lo, hi = min(starts), max(starts)
    pad = max(int((hi - lo) * PAD), MIN_PAD_NS)
    return lo - pad, hi + pad


def time_step(span_ns: int, ticks: int = TIME_TICKS) -> int:
    """The smallest round step that puts at most ``ticks`` ticks across ``span_ns``."""
    for step in TIME_STEPS:
        if span_ns / step <= ticks:
            return step
    return TIME_STEPS[-1] * max(1, -(-span_ns // (TIME_STEPS[-1] * ticks)))


def time_ticks(start_ns: int, end_ns: int, ticks: int = TIME_TICKS) -> list[Tick]:
    """Ticks at multiples of a round step (in UTC) inside [start_ns, end_ns], labelled
    to the step's precision; a tick on a new date (and the first, when the domain
    crosses midnight) shows the date too."""
    span = max(1, end_ns - start_ns)
    step = time_step(span, ticks)
    first = -(-start_ns // step) * step
    crosses = _day(start_ns) != _day(end_ns)
    out: list[Tick] = []
    previous_day = ""
    for value in range(first, end_ns + 1, step):
        day = _day(value)
        label = _time_label(value, step)
        if step < DAY and crosses and day != previous_day:
            label = f"{day[5:]} {label}"
        previous_day = day
        out.append(Tick(round((value - start_ns) / span * 100, 2), value, label))
    return out


def duration_ticks(top_ns: int, ticks: int = DURATION_TICKS) -> tuple[int, list[Tick]]:
    """A round top for the duration axis (at least ``top_ns``) and ticks from 0 to it."""
    step = _round_up(max(1, top_ns) / ticks)
    top = step * ticks
    return top, [Tick(round(i / ticks * 100, 2), step * i, "") for i in range(ticks + 1)]


def scatter(traces: list[TraceSummary]) -> Scatter | None:
    """Place traces by start time (x, over the fitted domain) and duration (y, from 0);
    None without traces."""
    if not traces:
        return None
    start_ns, end_ns = time_domain([t.start_ns for t in traces])
    span = end_ns - start_ns
    top_ns, y_ticks = duration_ticks(max(t.duration_ns for t in traces))
    dots = [
        Dot(
            t,
            round((t.start_ns - start_ns) / span * 100, 2),
            round(t.duration_ns / top_ns * 100, 2),
            round(3 + min(5, t.span_count**0.5 / 3), 1),
        )
        for t in traces
    ]
    return Scatter(dots, time_ticks(start_ns, end_ns), y_ticks, start_ns, end_ns, _day(start_ns))


def duration_fractions(traces: list[TraceSummary]) -> dict[str, float]:
    """Each trace's duration as a fraction of the longest one in the list (for bars)."""
    longest = max([t.duration_ns for t in traces] + [1])
    return {t.trace_id: t.duration_ns / longest for t in traces}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def _day(ns: int) -> str:
    return _utc(ns).strftime("%Y-%m-%d")


def _time_label(ns: int, step: int) -> str:
    moment = _utc(ns)
    if step < S:
        return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    if step < MIN:
        return moment.strftime("%H:%M:%S")
    if step < DAY:
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d")


def _round_up(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (an integer)."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude >= value:
                return factor * magnitude
        magnitude *= 10
