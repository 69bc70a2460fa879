"""The waterfall's layout around the rows: minimap, where duration labels go, error order.

Pure functions over a :class:`~app.analysis.tree.TraceView`; the trace page renders what
they return and ``static/waterfall.js`` applies the same label rule when the view zooms.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.analysis.badges import Badge, span_badges
from app.analysis.markers import EventMarker, event_markers
from app.analysis.tree import Row, TraceView

MINIMAP_WIDTH = 1000
MINIMAP_MIN_HEIGHT = 16
"""Rows of height the minimap's drawing has at least, so that a short trace draws thin bars
in the middle of the box instead of a block filling it."""
LABEL_ROOM = 0.15
"""Fraction of the track a duration label needs beside its bar (about 6 characters at the
narrowest usual track); keep in step with ``LABEL_ROOM`` in ``static/waterfall.js``."""
ERROR_ORDER_LIMIT = 500
"""Error spans "Next error" visits in cause order; past them it starts again."""


@dataclass(frozen=True, slots=True)
class RowMarks:
    """What a row shows besides its name and bar: badges, event markers, its label's side."""

    badges: list[Badge]
    markers: list[EventMarker]
    markers_left_off: int
    label_side: str


@dataclass(frozen=True, slots=True)
class MinimapBar:
    """One row's bar on the minimap, in the minimap's user units."""

    x: float
    y: float
    width: float
    colour: int
    error: bool


@dataclass(frozen=True, slots=True)
class Minimap:
    """The whole trace at a glance: ``height`` user units tall, rows sampled every ``step``."""

    bars: list[MinimapBar]
    height: int
    step: int
    width: int = MINIMAP_WIDTH


def row_marks(view: TraceView, rows: list[Row]) -> dict[str, RowMarks]:
    """Badges, markers and label side for the rows about to be rendered, by span id."""
    out = {}
    for r in rows:
        markers, left_off = event_markers(r, view.start_ns, view.duration_ns)
        out[r.span_id] = RowMarks(span_badges(r.span), markers, left_off, label_side(r.offset, r.width))
    return out


def build_minimap(rows: list[Row], max_bars: int) -> Minimap:
    """Sample at most ``max_bars`` rows into bars one unit high, centred in the drawing."""
    step = max(1, -(-len(rows) // max(1, max_bars)))
    sampled = rows[::step]
    height = max(len(sampled), MINIMAP_MIN_HEIGHT)
    top = (height - len(sampled)) / 2
    bars = [
        MinimapBar(
            x=round(r.offset * MINIMAP_WIDTH, 1),
            y=top + i,
            width=round(max(r.width * MINIMAP_WIDTH, 2.0), 1),
            colour=r.colour,
            error=r.span.is_error,
        )
        for i, r in enumerate(sampled)
    ]
    return Minimap(bars, height, step)


def label_side(offset: float, width: float) -> str:
    """Where a bar's duration label goes so it covers no bar and stays inside the track.

    ``right`` of the bar when there is room after its end, else ``left`` of it when there
    is room before its start, else ``inside`` the bar's right end (the bar then spans
    most of the track, so the label fits within it).
    """
    if offset + width <= 1 - LABEL_ROOM:
        return "right"
    if offset >= LABEL_ROOM:
        return "left"
    return "inside"


def error_order(view: TraceView) -> list[Row]:
    """Error rows in the order "Next error" visits them: deepest first (the likely cause),
    the later of two as deep first; at most :data:`ERROR_ORDER_LIMIT`.

    The first is the span whose reason the trace lists and saga pages give for a failure
    (the trace summary's deepest error span, judged by the same rule)."""
    errors = [r for r in view.rows if r.span.is_error]
    errors.sort(key=lambda r: (-r.depth, -r.start_ns, r.index))
    return errors[:ERROR_ORDER_LIMIT]
