"""Trace comparison (/traces/compare): A, the baseline, against B.

Traces come by id (``a`` and ``b``), as the two rows ticked in the search results
(``trace`` twice: the earlier one becomes A), or as ``previous=<id>``: that trace as B
against the latest earlier trace of its root service and operation (a redirect to the
``a``/``b`` address, so the comparison can be shared). The merged tree shows its first
FIRST_ROWS rows, every row with ``rows=all``; the biggest changes link into either.
Its own blueprint, registered
with the others in app/factory.py; the diff itself is pure (app.analysis.compare).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest, NotFound

from app.analysis.compare import LEVEL_TEXT, compare_traces
from app.params import parse_trace_id
from collectors.model import SpanOutline, TraceSummary
from collectors.store import SpanStore

bp = Blueprint("compare", __name__)

FIRST_ROWS = 1000
"""Rows of the merged tree rendered unless ``rows=all`` asks for every one (a link says so)."""


@bp.get("/traces/compare")
def page() -> Any:
    """The merged tree of traces ``a`` and ``b``; the form alone when either is missing."""
    store = _store()
    previous_of = request.args.get("previous", "").strip()
    if previous_of:
        b_id = parse_trace_id(previous_of)
        if not store.get_summaries([b_id]):
            raise NotFound(f"No trace {b_id} in the store")
        earlier = store.previous_trace(b_id)
        if earlier is None:
            message = (
                f"No earlier trace of this trace's root operation is stored: nothing to compare {b_id} with. "
                "Tick two traces in the search results instead."
            )
            return _render(a="", b=b_id, message=message), 404
        return redirect(url_for("compare.page", a=earlier.trace_id, b=b_id))
    raw_a, raw_b = request.args.get("a", "").strip(), request.args.get("b", "").strip()
    picked = [t.strip() for t in request.args.getlist("trace") if t.strip()]
    if picked and not (raw_a or raw_b):
        if len(picked) != 2:
            message = f"Tick two traces in the search results to compare them ({len(picked)} ticked)."
            return _render(a=picked[0], b="", message=message), 400
        ids = [parse_trace_id(t) for t in picked]
        starts = {s.trace_id: s.start_ns for s in store.get_summaries(ids)}
        raw_a, raw_b = sorted(ids, key=lambda t: starts.get(t, 0))
    if not (raw_a and raw_b):
        return _render(a=raw_a, b=raw_b)
    a_id, b_id = parse_trace_id(raw_a), parse_trace_id(raw_b)
    rows_wanted = request.args.get("rows", "")
    if rows_wanted not in ("", "all"):
        raise BadRequest(f"rows must be all or left out, got {rows_wanted[:20]!r}")
    every_row = rows_wanted == "all"
    a_spans, b_spans = load_trace(a_id), load_trace(b_id)
    summaries = {s.trace_id: s for s in store.get_summaries([a_id, b_id])}
    diff = compare_traces(a_spans, b_spans)
    return _render(
        a=a_id,
        b=b_id,
        diff=diff,
        shown=len(diff.rows) if every_row else min(len(diff.rows), FIRST_ROWS),
        all_url=url_for("compare.page", a=a_id, b=b_id, rows="all"),
        a_summary=summaries.get(a_id),
        b_summary=summaries.get(b_id),
        a_url=url_for("traces.detail", trace_id=a_id),
        b_url=url_for("traces.detail", trace_id=b_id),
    )


def load_trace(trace_id: str) -> list[SpanOutline]:
    """The outline of the trace's spans, or 404 naming it."""
    spans = _store().get_trace_outline(trace_id)
    if not spans:
        raise NotFound(f"No trace {trace_id} in the store")
    return spans


def _render(
    *,
    a: str,
    b: str,
    diff: Any = None,
    shown: int = 0,
    all_url: str = "",
    message: str = "",
    a_summary: TraceSummary | None = None,
    b_summary: TraceSummary | None = None,
    a_url: str = "",
    b_url: str = "",
) -> str:
    return render_template(
        "traces/compare.html",
        a=a,
        b=b,
        diff=diff,
        rows=diff.rows[:shown] if diff else [],
        shown=shown,
        all_url=all_url,
        message=message,
        a_summary=a_summary,
        b_summary=b_summary,
        a_url=a_url,
        b_url=b_url,
        levels=LEVEL_TEXT,
    )


def _store() -> SpanStore:
    return current_app.extensions["spyglass.store"]
