"""The circuit-breakers page (/breakers): state, counts and a timeline per breaker."""

from __future__ import annotations

from flask import Blueprint, current_app

from app.analysis.headlines import breakers_headline
from app.htmx import render_page_or_fragment
from app.topics import PAGE_TOPICS, TOPICS
from app.views import breaker_views
from app.window import WINDOW_CHOICES, parse_window

bp = Blueprint("breakers", __name__)


@bp.get("/breakers")
def index() -> str:
    """The breakers page; htmx refreshes the list."""
    window = parse_window()
    views = breaker_views(current_app.extensions["spyglass.store"], window)
    return render_page_or_fragment(
        "breakers/index.html",
        "breakers/_list.html",
        breakers=views,
        win=window,
        choices=WINDOW_CHOICES,
        topic=TOPICS[PAGE_TOPICS["breakers"]],
        now=breakers_headline(views),
    )
