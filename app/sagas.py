"""The saga pages: a list of instances (/sagas) and one saga's timeline and checks."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, request, url_for

from app.converters import fits_in_path
from app.analysis.headlines import sagas_headline
from app.htmx import render_page_or_fragment
from app.params import SAGA_OUTCOME_FILTERS, parse_limit, parse_outcome
from app.topics import PAGE_TOPICS, TOPICS
from app.views import saga_counts, saga_detail, saga_rows
from collectors.store import SpanStore

bp = Blueprint("sagas", __name__)


def _store() -> SpanStore:
    return current_app.extensions["spyglass.store"]


@bp.get("/sagas")
def index() -> str:
    """The list of saga instances, filterable by outcome."""
    outcome = parse_outcome(request.args.get("outcome"))
    limit = parse_limit(request.args.get("limit"), default=50)
    rows, truncated = saga_rows(_store(), outcome, limit)
    counts = saga_counts(_store())
    return render_page_or_fragment(
        "sagas/index.html",
        "sagas/_list.html",
        rows=rows,
        truncated=truncated,
        counts=counts,
        topic=TOPICS[PAGE_TOPICS["sagas"]],
        now=sagas_headline(counts, rows),
        outcome=outcome or "",
        outcomes=SAGA_OUTCOME_FILTERS,
        limit=limit,
    )


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
