"""The trace explorer: search (/traces), one trace (/traces/<id>), downloads.

Every view builds its context once and renders the page, or only the fragment htmx
asked for. Bad query values come back as a message naming the field, with status 400.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for
from werkzeug.exceptions import BadRequest, NotFound

from app import jaeger, otlp_json
from app.analysis.badges import span_badges
from app.analysis.search import duration_fractions, scatter
from app.analysis.spanfilter import SLOW_SHARE, FilteredRows, SpanFilter, filter_rows
from app.analysis.trace_events import EVENT_KINDS, kind_counts, trace_events
from app.analysis.tree import TraceView, build_trace_view, trace_operation_stats
from app.analysis.values import (
    EXCEPTION_EVENT,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
    typed_attributes,
)
from app.analysis.waterfall import build_minimap, error_order, row_marks
from app.filters import format_duration
from app.htmx import is_htmx, render_page_or_fragment
from app.params import parse_duration, parse_logfmt_tags, parse_name, parse_trace_id
from app.search_form import RANGE_LABELS, SORT_LABELS, STATUSES, SearchForm
from collectors.store import SpanStore

bp = Blueprint("traces", __name__)

FIRST_PAGE_ROWS = 300
"""Waterfall rows rendered with the page; the rest load as the user scrolls."""
MORE_ROWS = 1000
MINIMAP_ROWS = 600
EVENTS_SHOWN = 500
"""Events the events tab lists before its "show all"."""


def _store() -> SpanStore:
    return current_app.extensions["spyglass.store"]


@bp.after_request
def _vary_on_htmx(response: Response) -> Response:
    # One URL serves a page and a fragment: without this, Back can show a cached fragment
    # as if it were the page.
    response.vary.add("HX-Request")
    if is_htmx():
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/traces")
def search() -> Any:
    """The search page, or its results fragment for htmx (filters, live refresh)."""
    store = _store()
    form = SearchForm.from_args(request.args)
    now_ns = time.time_ns()
    query = form.query(now_ns)
    result = store.find_traces(query) if query else None
    traces = result.traces if result else []
    context = {
        "form": form,
        "services": store.list_services(),
        "operations": _operation_names(store, "" if "service" in form.errors else form.service),
        "traces": traces,
        "truncated": bool(result and result.truncated),
        "plot": scatter(traces),
        "bars": duration_fractions(traces),
        "ranges": RANGE_LABELS,
        "statuses": STATUSES,
        "sorts": SORT_LABELS,
        "refresh_url": url_for("traces.search", **form.params()),
    }
    html = render_page_or_fragment("traces/search.html", "traces/_results.html", **context)
    return html, 400 if form.errors else 200


@bp.get("/traces/operations")
def operations() -> str:
    """The operation <option>s for a service (the search form swaps them in)."""
    service = parse_name("service", request.args.get("service")) or ""
    return render_template(
        "traces/_operations.html",
        operations=_operation_names(_store(), service),
        selected=request.args.get("operation", ""),
    )


@bp.get("/traces/<trace_id>")
def detail(trace_id: str) -> Any:
    """One trace: header, waterfall and any span panels named by ``?span=``."""
    view, opened = _trace_view(trace_id)
    kept = filter_rows(view, _span_filter())
    last_open = max((i for i, r in enumerate(kept.rows) if r.span.span_id in opened), default=0)
    shown = max(FIRST_PAGE_ROWS, last_open + 1)
    return render_page_or_fragment(
        "traces/detail.html",
        "traces/_waterfall.html",
        **_waterfall_context(view, kept, opened, 0, shown),
        **_layout_context(view, kept),
    )


@bp.get("/traces/<trace_id>/rows")
def rows(trace_id: str) -> str:
    """The next page of waterfall rows, from ``offset`` (lazy loading of large traces), and at
    least up to row ``through`` when given."""
    view, opened = _trace_view(trace_id)
    kept = filter_rows(view, _span_filter())
    offset = _index("offset", request.args.get("offset"))
    stop = offset + MORE_ROWS
    if request.args.get("through"):
        # "Next error" asks for every row up to the error it goes to.
        stop = max(stop, _index("through", request.args["through"]) + 1)
    return render_template("traces/_rows.html", **_waterfall_context(view, kept, opened, offset, stop))


@bp.get("/traces/<trace_id>/spans/<span_id>")
def span(trace_id: str, span_id: str) -> Any:
    """The detail panel of one span (htmx swaps it under its row); a page without htmx."""
    view, _ = _trace_view(trace_id)
    row = view.row(span_id.lower())
    if row is None:
        raise NotFound(f"No span {span_id[:32]} in trace {view.trace_id}")
    context = {"view": view, "row": row, "p": _panel_context(row), **_view_links(view)}
    return render_page_or_fragment("traces/span.html", "traces/_span_panel.html", **context)


@bp.get("/traces/<trace_id>/stats")
def stats(trace_id: str) -> Any:
    """Per service and operation: count, total, self time, min/avg/max."""
    view, _ = _trace_view(trace_id)
    return render_page_or_fragment(
        "traces/stats.html", "traces/_stats.html", view=view, stats=trace_operation_stats(view), **_view_links(view)
    )


@bp.get("/traces/<trace_id>/events")
def events(trace_id: str) -> Any:
    """Every span event of the trace in time order, optionally of one ``kind``; the first
    :data:`EVENTS_SHOWN`, or all with ``all=1``."""
    view, _ = _trace_view(trace_id)
    _span_filter()  # the tabs carry the span filter: a bad one is a 400 here, as on the waterfall
    kind = request.args.get("kind", "")
    if kind and kind not in EVENT_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(EVENT_KINDS)}, got {kind[:20]!r}")
    show_all = request.args.get("all", "")
    if show_all not in ("", "1"):
        raise BadRequest(f"all must be 1 or empty, got {show_all[:20]!r}")
    every = trace_events(view)
    picked = [e for e in every if kind in e.kinds] if kind else every
    shown = picked if show_all else picked[:EVENTS_SHOWN]
    links = _view_links(view)

    def events_url(**extra: str) -> str:
        return url_for("traces.events", trace_id=view.trace_id, **links["params"], **extra)

    context = {
        "view": view,
        "events": shown,
        "picked": len(picked),
        "total": len(every),
        "kind": kind,
        "kinds": EVENT_KINDS,
        "counts": kind_counts(every),
        "kind_urls": {k: events_url(**({"kind": k} if k else {})) for k in ("", *EVENT_KINDS)},
        "all_url": events_url(**({"kind": kind} if kind else {}), all="1") if len(shown) < len(picked) else None,
        # An event's span link leaves out the span filter, which might hide that span.
        "span_params": {k: v for k, v in links["params"].items() if k not in FILTER_FIELDS},
        **links,
    }
    return render_page_or_fragment("traces/events.html", "traces/_events.html", **context)


@bp.get("/traces/<trace_id>/otlp.json")
def download_otlp(trace_id: str) -> Response:
    """The trace as an OTLP/JSON export request (can be posted back to /v1/traces)."""
    wanted = parse_trace_id(trace_id)
    return _download(otlp_json.export_request(_load(wanted)), f"trace-{wanted}.otlp.json")


@bp.get("/traces/<trace_id>/jaeger.json")
def download_jaeger(trace_id: str) -> Response:
    """The trace in Jaeger's JSON, as its query API serves it."""
    wanted = parse_trace_id(trace_id)
    body = {"data": [jaeger.trace(_load(wanted))], "total": 1, "limit": 0, "offset": 0, "errors": None}
    return _download(body, f"trace-{wanted}.jaeger.json")


# -- private helpers ------------------------------------------------------------------------


def _load(trace_id: str) -> list:
    spans = _store().get_trace(trace_id)
    if not spans:
        raise NotFound(f"No trace {trace_id} in the store")
    return spans


def _trace_view(raw_id: str) -> tuple[TraceView, list[str]]:
    trace_id = parse_trace_id(raw_id)
    spans = _load(trace_id)
    skew = request.args.get("skew", "on")
    if skew not in ("on", "off"):
        raise BadRequest(f"skew must be on or off, got {skew[:20]!r}")
    query = request.args.get("q", "")[:200]
    view = build_trace_view(spans, adjust_skew=skew == "on", query=query)
    opened = [s.lower() for s in request.args.getlist("span") if s]
    return view, opened


def _view_links(view: TraceView) -> dict[str, Any]:
    params = {}
    if not view.skew_adjusted:
        params["skew"] = "off"
    if view.query:
        params["q"] = view.query
    params.update(_filter_params())
    return {
        "waterfall_url": url_for("traces.detail", trace_id=view.trace_id, **params),
        "stats_url": url_for("traces.stats", trace_id=view.trace_id, **params),
        "events_url": url_for("traces.events", trace_id=view.trace_id, **params),
        "skew_url": url_for(
            "traces.detail", trace_id=view.trace_id, **{**params, "skew": "on" if not view.skew_adjusted else "off"}
        ),
        "params": params,
    }


def _waterfall_context(
    view: TraceView, kept: FilteredRows, opened: list[str], start: int, stop: int
) -> dict[str, Any]:
    rows = kept.rows[start:stop]
    panels = {r.span.span_id: _panel_context(r) for r in rows if r.span.span_id in opened}
    links = _view_links(view)
    more_url = None
    if stop < len(kept.rows):
        more_url = url_for("traces.rows", trace_id=view.trace_id, offset=stop, **links["params"])
    return {
        "view": view,
        "kept": kept,
        "rows_through": min(stop, len(kept.rows)),
        "rows": rows,
        "marks": row_marks(view, rows),
        "opened": opened,
        "panels": panels,
        "more_url": more_url,
        **links,
    }


def _layout_context(view: TraceView, kept: FilteredRows) -> dict[str, Any]:
    """What only the whole waterfall shows: the minimap, the axis, the errors' order (by
    place among the rows the filter keeps), the filter form and its pills."""
    place = {r.span_id: i for i, r in enumerate(kept.rows)}
    spec = _span_filter()
    unfiltered = {k: v for k, v in _view_links(view)["params"].items() if k not in FILTER_FIELDS}
    pills = {
        "status": ("error", spec.errors, "Errors", f"Spans with status ERROR ({view.error_count})"),
        "slow": (
            "on",
            spec.slow,
            f"Slowest {SLOW_SHARE:.0%} (self ≥ {format_duration(kept.slow_threshold_ns)})",
            f"The {SLOW_SHARE:.0%} of the spans with the most self time (time outside their children)",
        ),
        "critical": ("on", spec.critical, "Critical path", "The spans on the critical path"),
    }
    return {
        "minimap": build_minimap(view.rows, MINIMAP_ROWS),
        "ticks": [(i / 4, view.duration_ns * i // 4) for i in range(5)],
        "error_order": [[r.span_id, place[r.span_id]] for r in error_order(view) if r.span_id in place],
        "spec": spec,
        "filter_args": _filter_params(),
        "pills": pills,
        "clear_url": url_for("traces.detail", trace_id=view.trace_id, **unfiltered),
    }


FILTER_FIELDS = ("service", "tags", "min", "max", "status", "slow", "critical")
"""Query parameters of the span filter; every link of a filtered view carries them."""


def _filter_params() -> dict[str, str]:
    return {k: request.args[k][:500] for k in FILTER_FIELDS if request.args.get(k)}


def _span_filter() -> SpanFilter:
    """The span filter the query names; a bad value is a 400 naming its field."""
    args = request.args
    for name in ("slow", "critical"):
        if args.get(name, "") not in ("", "on"):
            raise BadRequest(f"{name} must be on or empty, got {args[name][:20]!r}")
    if args.get("status", "") not in ("", "error"):
        raise BadRequest(f"status must be error or empty, got {args['status'][:20]!r}")
    low, high = parse_duration("min", args.get("min")), parse_duration("max", args.get("max"))
    if low is not None and high is not None and low > high:
        raise BadRequest(f"min ({args['min'][:20]}) must not be more than max ({args['max'][:20]})")
    return SpanFilter(
        service=parse_name("service", args.get("service")) or "",
        tags=parse_logfmt_tags(args.get("tags")),
        min_ns=low,
        max_ns=high,
        errors=args.get("status") == "error",
        slow=args.get("slow") == "on",
        critical=args.get("critical") == "on",
    )


def _panel_context(row: Any) -> dict[str, Any]:
    s = row.span
    events = []
    for e in s.events:
        exception = None
        if e.name == EXCEPTION_EVENT:
            exception = {
                "type": str(e.attributes.get(EXCEPTION_TYPE, "")),
                "message": str(e.attributes.get(EXCEPTION_MESSAGE, "")),
                "stacktrace": str(e.attributes.get(EXCEPTION_STACKTRACE, "")),
            }
        events.append(
            {
                "event": e,
                "offset_ns": e.time_ns - s.start_ns,
                "exception": exception,
                "attributes": typed_attributes(
                    e.attributes, skip=(EXCEPTION_TYPE, EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE) if exception else ()
                ),
            }
        )
    return {
        "badges": span_badges(s),
        "attributes": typed_attributes(s.attributes),
        "events": events,
        "links_out": [{"link": lk, "attributes": typed_attributes(lk.attributes)} for lk in s.links],
        "resource": typed_attributes(s.resource.attributes),
        "scope": typed_attributes(s.resource.scope_attributes),
    }


def _operation_names(store: SpanStore, service: str) -> list[str]:
    return sorted({name for _, name, _ in store.list_operations(service or None)})


def _index(name: str, raw: str | None) -> int:
    try:
        value = int(raw or "0")
    except ValueError:
        raise BadRequest(f"{name} must be a non-negative integer, got {(raw or '')[:20]!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must be a non-negative integer, got {raw!r}")
    return value


def _download(body: dict[str, Any], filename: str) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
