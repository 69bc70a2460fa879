"""The landing page: services that have reported, and the most recent traces."""

from __future__ import annotations

from flask import Blueprint, current_app

from app.htmx import render_page_or_fragment
from collectors.store import SpanStore

bp = Blueprint("overview", __name__)

RECENT_TRACES = 25


@bp.get("/")
def index() -> str:
    """Services and recent traces; the list refreshes itself through htmx."""
    store: SpanStore = current_app.extensions["spyglass.store"]
    return render_page_or_fragment(
        "overview/index.html",
        "overview/_recent.html",
        services=store.list_services(),
        traces=store.recent_traces(RECENT_TRACES),
        span_count=store.count_spans(),
    )


@bp.get("/health")
def health() -> tuple[dict[str, str], int]:
    """Liveness and readiness: the store answers."""
    store: SpanStore = current_app.extensions["spyglass.store"]
    store.list_services()
    return {"status": "ok"}, 200
