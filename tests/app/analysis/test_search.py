"""The search scatter's axes: the time axis fits the results, ticks on round times."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from app.analysis.search import MIN_PAD_NS, S, scatter, time_domain, time_step, time_ticks
from collectors.model import TraceSummary

MS = 1_000_000
MIN = 60 * S


def at(text: str) -> int:
    """UTC ``YYYY-MM-DD HH:MM:SS`` as nanoseconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * S


def trace(n: int, start_ns: int, duration_ms: float = 10, spans: int = 4, errors: int = 0) -> TraceSummary:
    return TraceSummary(f"{n:032x}", "gateway", "GET /", start_ns, start_ns + int(duration_ms * MS), spans, errors)


def test_time_axis_fits_minutes_of_results_not_the_searched_hour():
    # Three minutes of traces (12:00:00 to 12:03:00) found by a one-hour search.
    traces = [trace(i, at("2026-12-01 12:00:00") + i * 30 * S, duration_ms=10 * (i + 1)) for i in range(7)]
    plot = scatter(traces)
    assert plot.start_ns == at("2026-12-01 12:00:00") - int(180 * S * 0.04)
    assert plot.end_ns == at("2026-12-01 12:03:00") + int(180 * S * 0.04)
    xs = [d.x for d in plot.dots]
    assert xs == sorted(xs) and 3 < xs[0] < 4 and 96 < xs[-1] < 97, "the dots spread over the whole plot"
    assert [t.label for t in plot.x_ticks] == ["12:00", "12:01", "12:02", "12:03"]
    assert all(0 <= t.pos <= 100 for t in plot.x_ticks)
    assert plot.day == "2026-12-01"


def test_seconds_of_results_get_second_ticks_and_one_result_gets_an_axis():
    traces = [trace(1, at("2026-12-01 08:30:10")), trace(2, at("2026-12-01 08:30:20"))]
    plot = scatter(traces)
    assert [t.label for t in plot.x_ticks] == ["08:30:10", "08:30:12", "08:30:14", "08:30:16", "08:30:18", "08:30:20"]
    lone = scatter([trace(3, at("2026-12-01 08:30:10") + 500 * MS)])
    assert (lone.start_ns, lone.end_ns) == (at("2026-12-01 08:30:09") + 500 * MS, at("2026-12-01 08:30:11") + 500 * MS)
    assert lone.dots[0].x == 50.0
    assert [t.label for t in lone.x_ticks] == [
        "08:30:09.500",
        "08:30:10.000",
        "08:30:10.500",
        "08:30:11.000",
        "08:30:11.500",
    ]


def test_ticks_across_midnight_carry_the_date():
    ticks = time_ticks(at("2026-12-01 22:00:00"), at("2026-12-02 04:00:00"))
    assert [t.label for t in ticks] == ["12-01 22:00", "23:00", "12-02 00:00", "01:00", "02:00", "03:00", "04:00"]


def test_days_of_results_are_labelled_by_date():
    ticks = time_ticks(at("2026-11-20 00:00:00"), at("2026-12-01 00:00:00"))
    assert [t.label for t in ticks] == [f"2026-11-{d}" for d in (21, 23, 25, 27, 29)] + ["2026-12-01"]


def test_duration_axis_runs_from_zero_to_a_round_top():
    plot = scatter([trace(1, at("2026-12-01 12:00:00"), duration_ms=270), trace(2, at("2026-12-01 12:00:05"), 90)])
    assert [t.value_ns for t in plot.y_ticks] == [0, 100 * MS, 200 * MS, 300 * MS]
    assert [t.pos for t in plot.y_ticks] == [0.0, 33.33, 66.67, 100.0]
    assert [d.y for d in plot.dots] == [90.0, 30.0]


def test_no_results_no_plot():
    assert scatter([]) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**62), min_size=1, max_size=30))
def test_every_dot_and_tick_lies_on_the_plot_and_ticks_stay_few(starts):
    plot = scatter([trace(i, s) for i, s in enumerate(starts)])
    assert all(0 < d.x < 100 and 0 <= d.y <= 100 for d in plot.dots)
    assert 1 <= len(plot.x_ticks) <= 7
    assert all(0 <= t.pos <= 100 for t in plot.x_ticks)
    assert [t.value_ns for t in plot.x_ticks] == sorted({t.value_ns for t in plot.x_ticks})
    lo, hi = time_domain(starts)
    assert hi - lo >= 2 * MIN_PAD_NS


def test_steps_are_round():
    assert time_step(3 * MIN) == 30 * S and time_step(4 * MIN) == MIN
    assert time_step(10 * S) == 2 * S
    assert time_step(2 * S) == 500 * MS
