"""The circuit-breakers page (/breakers): state, counts and a timeline per breaker."""

from __future__ import annotations

from flask import Blueprint, current_app

from app.analysis.breakers import BreakerView, summarize_breakers
from app.htmx import render_page_or_fragment
from app.window import WINDOW_CHOICES, Window, parse_window
from collectors.store import SpanStore, patterns

bp = Blueprint("breakers", __name__)


def breaker_views(store: SpanStore, window: Window) -> list[BreakerView]:
    """Every breaker seen in the window, with its timeline."""
    calls = patterns.find_breaker_calls(store, window.start_ns, window.end_ns)
    transitions = patterns.find_breaker_transitions(store, window.start_ns, window.end_ns)
    names = {c.name for c in calls} | {t.name for t in transitions}
    before = patterns.find_last_transitions_before(store, names, window.start_ns)
    return summarize_breakers(calls, transitions, before, window.start_ns, window.end_ns)


@bp.get("/breakers")
def index() -> str:
    """The breakers page; htmx refreshes the list."""
    window = parse_window()
    views = breaker_views(current_app.extensions["spyglass.store"], window)
    return render_page_or_fragment(
        "breakers/index.html", "breakers/_list.html", breakers=views, win=window, choices=WINDOW_CHOICES
    )
