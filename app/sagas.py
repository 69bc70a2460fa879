"""The saga pages: a list of instances (/sagas) and one saga's timeline and checks."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, request, url_for
from werkzeug.exceptions import BadRequest

from app.analysis.sagas import check_saga, failed_action, saga_timeline
from app.converters import fits_in_path
from app.htmx import render_page_or_fragment
from app.params import parse_limit, parse_name
from collectors.store import SpanStore, patterns

bp = Blueprint("sagas", __name__)

OUTCOMES = (*patterns.SAGA_OUTCOMES, patterns.RUNNING)


def _store() -> SpanStore:
    return current_app.extensions["spyglass.store"]


def parse_outcome(raw: str | None) -> str | None:
    """An outcome filter: empty, or one of completed, compensated, failed, running."""
    if not raw:
        return None
    if raw not in OUTCOMES:
        raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}, got {raw[:64]!r}")
    return raw


def saga_rows(store: SpanStore, outcome: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Sagas, most recent first, each with its failed step (if any)."""
    found = patterns.find_sagas(store, outcome=outcome, limit=limit)
    steps = patterns.find_saga_steps(store, [s.saga_id for s in found.sagas])
    rows = []
    for s in found.sagas:
        failed = failed_action(steps.get(s.saga_id, []))
        rows.append({"saga": s, "failed_step": failed.step if failed else None})
    return rows, found.truncated


@bp.get("/sagas")
def index() -> str:
    """The list of saga instances, filterable by outcome."""
    outcome = parse_outcome(request.args.get("outcome"))
    limit = parse_limit(request.args.get("limit"), default=50)
    rows, truncated = saga_rows(_store(), outcome, limit)
    return render_page_or_fragment(
        "sagas/index.html",
        "sagas/_list.html",
        rows=rows,
        truncated=truncated,
        outcome=outcome or "",
        outcomes=OUTCOMES,
        limit=limit,
    )


def saga_detail(store: SpanStore, saga_id: str) -> dict[str, Any]:
    """One saga, its steps, timeline and checks; 404 when unknown."""
    parse_name("saga id", saga_id)
    saga = patterns.get_saga(store, saga_id)
    if saga is None:
        abort(404, description=f"No saga {saga_id[:200]!r} in the store")
    steps = patterns.find_saga_steps(store, [saga_id])[saga_id]
    return {"saga": saga, "steps": steps, "timeline": saga_timeline(saga, steps), "check": check_saga(saga, steps)}


@bp.get("/sagas/<path:saga_id>")
def detail(saga_id: str) -> str:
    """One saga's timeline and the verdict of its checks."""
    return render_page_or_fragment("sagas/detail.html", "sagas/_detail.html", **saga_detail(_store(), saga_id))


@bp.get("/sagas/")
def detail_by_query() -> str:
    """One saga named by ``?id=``: the link for an id no path segment can carry (``..``)."""
    saga_id = request.args.get("id")
    if saga_id is None:
        abort(400, description="id is required, e.g. /sagas/?id=order-42 (or /sagas/order-42)")
    return detail(saga_id)


@bp.app_template_global()
def saga_url(saga_id: str) -> str:
    """The link to a saga's page: its id as one path segment, or in the query string."""
    if fits_in_path(saga_id):
        return url_for("sagas.detail", saga_id=saga_id)
    return url_for("sagas.detail_by_query", id=saga_id)
