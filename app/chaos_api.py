"""The chaos lab's JSON: /api/v1/scenarios and /api/v1/experiments (DESIGN.md).

Starting an experiment is a POST with the demo's control token (scripts) or, from a page
of this dashboard, the CSRF token; see :mod:`app.post_guard`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, url_for
from werkzeug.exceptions import NotFound

from app.params import parse_name
from app.post_guard import guard, json_body
from app.scenarios import SCENARIOS
from app.views import scenario_named, start_run
from collectors.store import SpanStore
from collectors.store.experiments import Experiment

bp = Blueprint("chaos_api", __name__, url_prefix="/api/v1")


def store() -> SpanStore:
    """The app's store."""
    return current_app.extensions["spyglass.store"]


def experiment_json(e: Experiment) -> dict[str, Any]:
    """The DESIGN.md shape of an experiment, plus what changed, when and from where."""
    return {
        "id": e.id,
        "scenario": e.scenario,
        "status": e.status,
        "hypothesis": e.hypothesis,
        "verdict": e.verdict,
        "checks": e.checks,
        "trace_ids": e.trace_ids,
        "changes": e.changes,
        "address": e.address,
        "started_ns": e.started_ns,
        "finished_ns": e.finished_ns,
        "findings": e.findings,
        "url": url_for("chaos.experiment", experiment_id=e.id, _external=True),
    }


@bp.get("/scenarios")
def scenarios() -> Any:
    """The scenarios this dashboard can run."""
    return jsonify({"scenarios": [s.public() for s in SCENARIOS.values()]})


@bp.post("/experiments")
def start() -> Any:
    """``{"scenario": name}`` -> 202 ``{"id", "url"}``; 404 unknown, 409 while one runs."""
    guard().check()
    body = json_body()
    scenario_named(body.get("scenario"))
    experiment = start_run(body.get("scenario"))
    url = url_for("chaos.experiment", experiment_id=experiment.id, _external=True)
    response = jsonify({"id": experiment.id, "url": url})
    response.status_code = 202
    response.headers["Location"] = url_for("chaos_api.experiment", experiment_id=experiment.id)
    return response


@bp.get("/experiments")
def experiments() -> Any:
    """Past experiments, newest first."""
    return jsonify({"experiments": [experiment_json(e) for e in store().list_experiments(200)]})


@bp.get("/experiments/<experiment_id>")
def experiment(experiment_id: str) -> Any:
    """One experiment: status, verdict, checks and trace ids."""
    found = store().get_experiment(parse_name("experiment id", experiment_id[:64]) or "")
    if found is None:
        raise NotFound(f"no experiment {experiment_id[:64]!r}")
    return jsonify(experiment_json(found))
