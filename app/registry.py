"""The registry page (/registry): instances, their health and traffic, declared versus
observed topology, and discovery as traces show it (lookups per caller, fail-overs). The
registry is asked over HTTP at ``Settings.registry_url`` (:mod:`app.registry_client`).

The page itself never waits for the registry: it renders at once and loads the part
that needs the registry from ``/registry/instances``, an htmx fragment that says plainly
when the registry cannot be reached (naming the URL it tried).
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from app.analysis.headlines import registry_headline, traffic_headline
from app.htmx import render_page_or_fragment
from app.topics import PAGE_TOPICS, TOPICS
from app.views import registry_view
from app.window import WINDOW_CHOICES, parse_window

bp = Blueprint("registry", __name__)


@bp.get("/registry")
def index() -> str:
    """The page: the window form and a placeholder that loads the instances fragment."""
    window = parse_window()
    activity = current_app.extensions["spyglass.store"].find_instance_activity(window.start_ns, window.end_ns)
    return render_page_or_fragment(
        "registry/index.html",
        "registry/_loader.html",
        win=window,
        choices=WINDOW_CHOICES,
        registry_url=current_app.config["SPYGLASS_SETTINGS"].registry_url,
        topic=TOPICS[PAGE_TOPICS["registry"]],
        now=traffic_headline(activity),
    )


@bp.get("/registry/instances")
def instances() -> str:
    """The fragment: instances, health, traffic, the two topologies side by side, lookups
    and fail-overs."""
    window = parse_window()
    settings = current_app.config["SPYGLASS_SETTINGS"]
    store = current_app.extensions["spyglass.store"]
    topology, discovery, problem = registry_view(store, settings.registry_url, window)
    return render_template(
        "registry/_body.html",
        topo=topology,
        discovery=discovery,
        problem=problem,
        win=window,
        registry_url=settings.registry_url,
        topic=TOPICS[PAGE_TOPICS["registry"]],
        now=registry_headline(topology, problem, discovery),
        oob=True,
    )
