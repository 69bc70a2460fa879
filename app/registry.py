"""The registry page (/registry): instances, their health and traffic, declared versus
observed topology. The registry is asked over HTTP at ``Settings.registry_url``.

The page itself never waits for the registry: it renders at once and loads the part
that needs the registry from ``/registry/instances``, an htmx fragment that says plainly
when the registry cannot be reached (naming the URL it tried).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from flask import Blueprint, current_app, render_template

from app.analysis.registry import Topology, compare_topology, parse_instances
from app.htmx import render_page_or_fragment
from app.window import WINDOW_CHOICES, Window, parse_window
from collectors.store import SpanStore, patterns

bp = Blueprint("registry", __name__)

FETCH_TIMEOUT_S = 2.0
MAX_BODY = 5 * 1024 * 1024


class RegistryUnavailableError(RuntimeError):
    """The registry could not be reached or answered something unusable."""


def fetch_instances(base_url: str, timeout_s: float = FETCH_TIMEOUT_S) -> list[dict[str, Any]]:
    """``GET {base_url}/instances``; raises RegistryUnavailableError saying why not."""
    url = base_url.rstrip("/") + "/instances"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (URL from settings)
            body = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as err:
        raise RegistryUnavailableError(f"the registry at {url} answered {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise RegistryUnavailableError(f"the registry at {url} is unreachable: {reason}") from err
    if len(body) > MAX_BODY:
        raise RegistryUnavailableError(f"the registry at {url} sent more than {MAX_BODY} bytes")
    try:
        return parse_instances(json.loads(body))
    except ValueError as err:
        raise RegistryUnavailableError(f"the registry at {url} sent an unusable answer: {err}") from err


def registry_view(store: SpanStore, registry_url: str, window: Window) -> tuple[Topology, str | None]:
    """The topology comparison, and the reason the registry could not be asked (or None)."""
    edges = patterns.find_edge_stats(store, window.start_ns, window.end_ns)
    activity = patterns.find_instance_activity(store, window.start_ns, window.end_ns)
    try:
        raw = fetch_instances(registry_url)
        problem = None
    except RegistryUnavailableError as err:
        raw, problem = [], str(err)
    return compare_topology(raw, edges, activity), problem


@bp.get("/registry")
def index() -> str:
    """The page: the window form and a placeholder that loads the instances fragment."""
    window = parse_window()
    return render_page_or_fragment(
        "registry/index.html",
        "registry/_loader.html",
        win=window,
        choices=WINDOW_CHOICES,
        registry_url=current_app.config["SPYGLASS_SETTINGS"].registry_url,
    )


@bp.get("/registry/instances")
def instances() -> str:
    """The fragment: instances, health, traffic and the two topologies side by side."""
    window = parse_window()
    settings = current_app.config["SPYGLASS_SETTINGS"]
    topology, problem = registry_view(current_app.extensions["spyglass.store"], settings.registry_url, window)
    return render_template(
        "registry/_body.html",
        topo=topology,
        problem=problem,
        win=window,
        registry_url=settings.registry_url,
    )
