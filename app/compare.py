"""Trace comparison (/traces/compare): two traces picked by id or ticked in the search results.

Its own blueprint, registered with the others in app/factory.py; the diff itself is
pure (app.analysis.compare).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request
from werkzeug.exceptions import NotFound

from app.analysis.compare import compare_traces
from app.params import parse_trace_id
from collectors.model import Span
from collectors.store import SpanStore

bp = Blueprint("compare", __name__)


@bp.get("/traces/compare")
def page() -> Any:
    """Structural diff of traces ``a`` and ``b``; a form when either is missing.

    The search results submit their ticked rows as ``trace`` (twice): the same two traces.
    """
    raw_a, raw_b = request.args.get("a", "").strip(), request.args.get("b", "").strip()
    picked = [t.strip() for t in request.args.getlist("trace") if t.strip()]
    if picked and not (raw_a or raw_b):
        if len(picked) != 2:
            message = f"Tick two traces in the search results to compare them ({len(picked)} ticked)."
            return render_template("traces/compare.html", a=picked[0], b="", diff=None, message=message), 400
        raw_a, raw_b = picked
    diff = None
    if raw_a and raw_b:
        a_id, b_id = parse_trace_id(raw_a), parse_trace_id(raw_b)
        diff = compare_traces(load_trace(a_id), load_trace(b_id))
    return render_template("traces/compare.html", a=raw_a, b=raw_b, diff=diff)


def load_trace(trace_id: str) -> list[Span]:
    """The trace's spans, or 404 naming it."""
    store: SpanStore = current_app.extensions["spyglass.store"]
    spans = store.get_trace(trace_id)
    if not spans:
        raise NotFound(f"No trace {trace_id} in the store")
    return spans
