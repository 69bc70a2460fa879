"""The landing page: each service's health, what the patterns just did, the latest traces
and what to try in the chaos lab."""

from __future__ import annotations

from flask import Blueprint, current_app

from app.htmx import render_page_or_fragment
from app.scenarios import SCENARIOS
from app.views import overview
from app.window import parse_window
from collectors.store import SpanStore

bp = Blueprint("overview", __name__)


@bp.get("/")
def index() -> str:
    """The overview; its figures refresh themselves through htmx."""
    window = parse_window()
    return render_page_or_fragment(
        "overview/index.html",
        "overview/_live.html",
        win=window,
        scenarios=list(SCENARIOS.values()),
        **overview(current_app.extensions["spyglass.store"], window),
    )


@bp.get("/health")
def health() -> tuple[dict[str, str], int]:
    """Liveness and readiness: the store answers."""
    store: SpanStore = current_app.extensions["spyglass.store"]
    store.list_services()
    return {"status": "ok"}, 200
