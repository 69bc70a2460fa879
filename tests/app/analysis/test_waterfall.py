"""The waterfall's layout: minimap, duration-label sides, the order "Next error" follows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.analysis.tree import build_trace_view
from app.analysis.waterfall import (
    LABEL_ROOM,
    MINIMAP_MIN_HEIGHT,
    MINIMAP_WIDTH,
    build_minimap,
    error_order,
    label_side,
    row_marks,
)
from collectors.model import STATUS_ERROR, Resource, Span

MS = 1_000_000


def span(n: int, parent: int | None, start_ms: float, end_ms: float, *, error: bool = False, **kw) -> Span:
    return Span(
        "ab" * 16,
        f"{n:016x}",
        f"{parent:016x}" if parent is not None else "",
        f"op{n}",
        1,
        int(start_ms * MS),
        int(end_ms * MS),
        Resource("svc", {"service.instance.id": "svc-1"}),
        status_code=STATUS_ERROR if error else 0,
        **kw,
    )


def test_a_one_span_trace_draws_one_thin_full_width_bar_in_the_middle_of_the_minimap():
    minimap = build_minimap(build_trace_view([span(1, None, 0, 10)]).rows, 600)
    (bar,) = minimap.bars
    assert minimap.height == MINIMAP_MIN_HEIGHT
    assert (bar.x, bar.width) == (0, MINIMAP_WIDTH)
    assert bar.y == (MINIMAP_MIN_HEIGHT - 1) / 2


def test_a_zero_length_span_still_shows_on_the_minimap():
    (bar,) = build_minimap(build_trace_view([span(1, None, 5, 5)]).rows, 600).bars
    assert bar.width > 0


def test_a_large_trace_is_sampled_to_at_most_the_bars_asked_for():
    spans = [span(1, None, 0, 2000)] + [span(n, 1, n, n + 1) for n in range(2, 1500)]
    minimap = build_minimap(build_trace_view(spans).rows, 600)
    assert len(minimap.bars) <= 600 and minimap.step == 3
    assert minimap.height == len(minimap.bars)


@given(st.floats(0, 1), st.floats(0, 1))
def test_a_duration_label_is_placed_where_it_covers_no_bar_and_stays_in_the_track(offset, width):
    width = min(width, 1 - offset)
    side = label_side(offset, width)
    if side == "right":
        assert offset + width + LABEL_ROOM <= 1 + 1e-9
    elif side == "left":
        assert offset >= LABEL_ROOM
    else:
        assert width >= 1 - 2 * LABEL_ROOM - 1e-9, "only a bar spanning most of the track holds its label"


def test_next_error_starts_at_the_deepest_error_then_climbs_latest_first_at_each_depth():
    spans = [
        span(1, None, 0, 100, error=True),
        span(2, 1, 10, 90, error=True),
        span(3, 2, 20, 30, error=True),
        span(4, 2, 40, 50),
        span(5, 4, 41, 49, error=True),
        span(6, 1, 60, 70, error=True),
    ]
    order = [r.span_id for r in error_order(build_trace_view(spans))]
    assert order == [f"{n:016x}" for n in (5, 3, 6, 2, 1)]


def test_row_marks_cover_only_the_rows_asked_for_with_badges_and_sides():
    view = build_trace_view([span(1, None, 0, 100), span(2, 1, 0, 10), span(3, 1, 95, 100)])
    marks = row_marks(view, view.rows[1:])
    assert set(marks) == {f"{2:016x}", f"{3:016x}"}
    assert [b.text for b in marks[f"{2:016x}"].badges] == ["svc-1"]
    assert marks[f"{2:016x}"].label_side == "right" and marks[f"{3:016x}"].label_side == "left"
    assert row_marks(view, view.rows[:1])[f"{1:016x}"].label_side == "inside"
