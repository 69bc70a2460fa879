"""The trace explorer: search (/traces), one trace (/traces/<id>), downloads.

Every view builds its context once and renders the page, or only the fragment htmx
asked for. Bad query values come back as a message naming the field, with status 400.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, NotFound

from app import jaeger, otlp_json
from app.analysis.search import duration_fractions, scatter
from app.analysis.tree import TraceView, build_trace_view, trace_operation_stats
from app.analysis.values import (
    EXCEPTION_EVENT,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
    typed_attributes,
)
from app.htmx import is_htmx, render_page_or_fragment
from app.params import parse_datetime, parse_duration, parse_limit, parse_logfmt_tags, parse_name, parse_trace_id
from collectors.store import SORT_ORDERS, SpanStore, TraceQuery

bp = Blueprint("traces", __name__)

RANGES = {"15m": 15 * 60, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600, "custom": 0}
RANGE_LABELS = {
    "15m": "Last 15 minutes",
    "1h": "Last hour",
    "6h": "Last 6 hours",
    "24h": "Last 24 hours",
    "custom": "Custom range",
}
STATUSES = ("any", "error", "ok")
SORT_LABELS = {"recent": "Most recent", "slowest": "Slowest", "spans": "Most spans", "errors": "Most errors"}
DEFAULT_LIMIT = 20
FIRST_PAGE_ROWS = 300
"""Waterfall rows rendered with the page; the rest load as the user scrolls."""
MORE_ROWS = 1000
MINIMAP_ROWS = 600
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass
class SearchForm:
    """The search filters as typed (kept as text so the form shows what was sent)."""

    service: str = ""
    operation: str = ""
    tags: str = ""
    status: str = "any"
    min_duration: str = ""
    max_duration: str = ""
    range: str = "1h"
    start: str = ""
    end: str = ""
    limit: str = str(DEFAULT_LIMIT)
    sort: str = "recent"
    live: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: MultiDict) -> SearchForm:
        """Read the form from query parameters, defaults for what is missing."""
        form = cls()
        for name in (
            "service",
            "operation",
            "tags",
            "status",
            "min_duration",
            "max_duration",
            "range",
            "start",
            "end",
            "limit",
            "sort",
        ):
            value = args.get(name)
            if value is not None:
                setattr(form, name, value.strip())
        form.live = args.get("live") in ("1", "on", "true")
        return form

    def query(self, now_ns: int) -> TraceQuery | None:
        """The store query, or None after recording a message per bad field in ``errors``."""
        values: dict[str, Any] = {}
        checks = {
            "service": lambda: parse_name("service", self.service),
            "operation": lambda: parse_name("operation", self.operation),
            "tags": lambda: parse_logfmt_tags(self.tags),
            "min_duration": lambda: parse_duration("min duration", self.min_duration),
            "max_duration": lambda: parse_duration("max duration", self.max_duration),
            "limit": lambda: parse_limit(self.limit, DEFAULT_LIMIT),
            "range": lambda: self._window(now_ns),
            "status": lambda: _choice("status", self.status, STATUSES),
            "sort": lambda: _choice("sort", self.sort, SORT_ORDERS),
        }
        for name, check in checks.items():
            try:
                values[name] = check()
            except BadRequest as err:
                self.errors[name] = str(err.description)
        lo, hi = values.get("min_duration"), values.get("max_duration")
        if lo is not None and hi is not None and lo > hi:
            self.errors["max_duration"] = f"max duration must not be below min duration, got {self.max_duration!r}"
        if self.errors:
            return None
        start_ns, end_ns = values["range"]
        return TraceQuery(
            start_ns=start_ns,
            end_ns=end_ns,
            service=values["service"],
            operation=values["operation"],
            tags=values["tags"],
            min_duration_ns=lo,
            max_duration_ns=hi,
            status=self.status,
            limit=values["limit"],
            sort=self.sort,
        )

    def _window(self, now_ns: int) -> tuple[int, int]:
        if self.range not in RANGES:
            raise BadRequest(f"range must be one of {', '.join(RANGES)}, got {self.range!r}")
        if self.range != "custom":
            return now_ns - RANGES[self.range] * 1_000_000_000, now_ns
        start = parse_datetime("start", self.start)
        end = parse_datetime("end", self.end) if self.end else now_ns
        if start is None:
            raise BadRequest("start is needed for a custom range, as 2024-05-01T13:45 (UTC)")
        if end < start:
            raise BadRequest(f"range end {self.end!r} is before its start {self.start!r}")
        return start, end

    def params(self, **overrides: Any) -> dict[str, Any]:
        """Query parameters that reproduce this search (for links)."""
        out = {
            k: v
            for k, v in {
                "service": self.service,
                "operation": self.operation,
                "tags": self.tags,
                "status": self.status,
                "min_duration": self.min_duration,
                "max_duration": self.max_duration,
                "range": self.range,
                "start": self.start if self.range == "custom" else "",
                "end": self.end if self.range == "custom" else "",
                "limit": self.limit,
                "sort": self.sort,
                "live": "1" if self.live else "",
            }.items()
            if v
        }
        out.update(overrides)
        return out


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
    last_open = max((r.index for r in view.rows if r.span.span_id in opened), default=0)
    shown = max(FIRST_PAGE_ROWS, last_open + 1)
    return render_page_or_fragment(
        "traces/detail.html", "traces/_waterfall.html", **_waterfall_context(view, opened, 0, shown)
    )


@bp.get("/traces/<trace_id>/rows")
def rows(trace_id: str) -> str:
    """The next page of waterfall rows, from ``offset`` (lazy loading of large traces)."""
    view, opened = _trace_view(trace_id)
    offset = _offset(request.args.get("offset"))
    return render_template("traces/_rows.html", **_waterfall_context(view, opened, offset, offset + MORE_ROWS))


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
    return {
        "waterfall_url": url_for("traces.detail", trace_id=view.trace_id, **params),
        "stats_url": url_for("traces.stats", trace_id=view.trace_id, **params),
        "skew_url": url_for(
            "traces.detail", trace_id=view.trace_id, **{**params, "skew": "on" if not view.skew_adjusted else "off"}
        ),
        "params": params,
    }


def _waterfall_context(view: TraceView, opened: list[str], start: int, stop: int) -> dict[str, Any]:
    rows = view.rows[start:stop]
    panels = {r.span.span_id: _panel_context(r) for r in rows if r.span.span_id in opened}
    links = _view_links(view)
    more_url = None
    if stop < len(view.rows):
        more_url = url_for("traces.rows", trace_id=view.trace_id, offset=stop, **links["params"])
    step = max(1, len(view.rows) // MINIMAP_ROWS)
    return {
        "view": view,
        "rows": rows,
        "opened": opened,
        "panels": panels,
        "more_url": more_url,
        "minimap": view.rows[::step],
        "minimap_step": step,
        "ticks": [(i / 4, view.duration_ns * i // 4) for i in range(5)],
        **links,
    }


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
        "attributes": typed_attributes(s.attributes),
        "events": events,
        "links_out": [{"link": lk, "attributes": typed_attributes(lk.attributes)} for lk in s.links],
        "resource": typed_attributes(s.resource.attributes),
        "scope": typed_attributes(s.resource.scope_attributes),
    }


def _operation_names(store: SpanStore, service: str) -> list[str]:
    return sorted({name for _, name, _ in store.list_operations(service or None)})


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}, got {value[:40]!r}")
    return value


def _offset(raw: str | None) -> int:
    try:
        value = int(raw or "0")
    except ValueError:
        raise BadRequest(f"offset must be a non-negative integer, got {(raw or '')[:20]!r}") from None
    if value < 0:
        raise BadRequest(f"offset must be a non-negative integer, got {raw!r}")
    return value


def _download(body: dict[str, Any], filename: str) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
