"""Jaeger-compatible JSON query API under /api/ (what Grafana's Jaeger data source reads)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import NotFound

from app import jaeger
from app.params import (
    parse_duration,
    parse_epoch,
    parse_json_tags,
    parse_limit,
    parse_logfmt_tags,
    parse_name,
    parse_trace_id,
)
from collectors.store import SpanStore, TraceQuery

bp = Blueprint("api", __name__, url_prefix="/api")

DEFAULT_LOOKBACK_NS = 48 * 3_600_000_000_000
"""Window searched when a request gives no start: the last two days."""


def _store() -> SpanStore:
    return current_app.extensions["spyglass.store"]


def _envelope(data: Any, total: int | None = None) -> dict[str, Any]:
    return {"data": data, "total": total if total is not None else len(data), "limit": 0, "offset": 0, "errors": None}


@bp.get("/services")
def services() -> Any:
    """Every service that has sent spans."""
    return jsonify(_envelope(_store().list_services()))


@bp.get("/services/<path:service>/operations")
def service_operations(service: str) -> Any:
    """Operation names of one service (Jaeger's older endpoint)."""
    names = sorted({name for _, name, _ in _store().list_operations(parse_name("service", service))})
    return jsonify(_envelope(names))


@bp.get("/operations")
def operations() -> Any:
    """Operations of a service with their span kinds; ``spanKind`` filters."""
    service = parse_name("service", request.args.get("service"))
    kind = (request.args.get("spanKind") or "").lower()
    ops = [
        {"name": name, "spanKind": jaeger.SPAN_KIND_NAMES.get(k, "unspecified")}
        for _, name, k in _store().list_operations(service)
    ]
    if kind:
        ops = [op for op in ops if op["spanKind"] == kind]
    return jsonify(_envelope(ops))


@bp.get("/traces")
def find_traces() -> Any:
    """Search traces, or fetch several by ``traceID``; whole traces in Jaeger's JSON."""
    store = _store()
    ids = request.args.getlist("traceID")
    if ids:
        wanted = [parse_trace_id(t) for t in ids]
        found = [store.get_trace(t) for t in wanted]
        return jsonify(_envelope([jaeger.trace(spans) for spans in found if spans]))
    query = build_query(request.args)
    result = store.find_traces(query)
    traces = [jaeger.trace(spans) for spans in (store.get_trace(t.trace_id) for t in result.traces) if spans]
    return jsonify(_envelope(traces))


@bp.get("/traces/<trace_id>")
def get_trace(trace_id: str) -> Any:
    """One whole trace; 404 when it is not in the store."""
    wanted = parse_trace_id(trace_id)
    spans = _store().get_trace(wanted)
    if not spans:
        raise NotFound(f"trace {wanted} not found")
    return jsonify(_envelope([jaeger.trace(spans)]))


@bp.get("/dependencies")
def dependencies() -> Any:
    """Service dependency links over ``lookback`` ms ending at ``endTs`` ms (Jaeger's units)."""
    ms = 1_000_000
    end_ns = parse_epoch("endTs", request.args.get("endTs"), unit_ns=ms, unit="milliseconds", default_ns=time.time_ns())
    lookback_ns = parse_epoch(
        "lookback", request.args.get("lookback"), unit_ns=ms, unit="milliseconds", default_ns=24 * 3600 * 1000 * ms
    )
    edges = _store().dependencies(max(0, end_ns - lookback_ns), end_ns)
    return jsonify(_envelope(jaeger.dependencies(edges)))


def build_query(args: Any) -> TraceQuery:
    """A TraceQuery from Jaeger's search parameters (times in µs since the epoch)."""
    us = 1000
    end_ns = parse_epoch("end", args.get("end"), unit_ns=us, unit="microseconds", default_ns=time.time_ns() // us * us)
    lookback = args.get("lookback")
    lookback_ns = None if lookback in (None, "", "custom") else parse_duration("lookback", lookback)
    default_start = max(0, end_ns - (lookback_ns or DEFAULT_LOOKBACK_NS) // us * us)
    start_ns = parse_epoch("start", args.get("start"), unit_ns=us, unit="microseconds", default_ns=default_start)
    tags = parse_json_tags(args.get("tags"))
    for raw in args.getlist("tag"):
        key, sep, value = raw.partition(":")
        if not sep:
            tags.update(parse_logfmt_tags(raw))
        else:
            tags[key] = value
    min_d = parse_duration("minDuration", args.get("minDuration"))
    max_d = parse_duration("maxDuration", args.get("maxDuration"))
    return TraceQuery(
        start_ns=start_ns,
        end_ns=end_ns,
        service=parse_name("service", args.get("service")),
        operation=parse_name("operation", args.get("operation")),
        tags=tags,
        min_duration_ns=min_d,
        max_duration_ns=max_d,
        limit=parse_limit(args.get("limit")),
    )
