"""Pure mapping from model objects to the JSON shapes of Jaeger's query API.

Grafana's Jaeger data source and scripts written for Jaeger read these shapes, so the
field names, tag types and units (microseconds) follow Jaeger's ``model/json`` exactly.
"""

from __future__ import annotations

import json
import math
from typing import Any

from app.analysis.values import plain
from collectors.model import (
    BYTES_MARKER,
    SPAN_KIND_NAMES,
    STATUS_ERROR,
    STATUS_OK,
    Edge,
    Resource,
    Span,
)

SERVICE_NAME = "service.name"


def tag(key: str, value: Any) -> dict[str, Any]:
    """One Jaeger key/type/value tag from an attribute value."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"key": key, "type": "float64", "value": value}
        return {"key": key, "type": "string", "value": repr(value)}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    if isinstance(value, dict) and set(value) == {BYTES_MARKER}:
        return {"key": key, "type": "binary", "value": value[BYTES_MARKER]}
    return {"key": key, "type": "string", "value": json.dumps(plain(value), ensure_ascii=False)}


def tags(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """Jaeger tags for an attribute map, in the attributes' order."""
    return [tag(k, v) for k, v in attributes.items()]


def trace(spans: list[Span]) -> dict[str, Any]:
    """One trace in Jaeger's JSON: its spans and a process per distinct resource."""
    processes: dict[int, tuple[str, Resource]] = {}
    out_spans = []
    for s in spans:
        pid, _ = processes.setdefault(id(s.resource), (f"p{len(processes) + 1}", s.resource))
        out_spans.append(span(s, pid))
    return {
        "traceID": spans[0].trace_id if spans else "",
        "spans": out_spans,
        "processes": {pid: process(res) for pid, res in processes.values()},
        "warnings": None,
    }


def process(resource: Resource) -> dict[str, Any]:
    """A Jaeger process: the service name and the other resource attributes as tags."""
    return {
        "serviceName": resource.service_name,
        "tags": [tag(k, v) for k, v in resource.attributes.items() if k != SERVICE_NAME],
    }


def span(s: Span, process_id: str) -> dict[str, Any]:
    """One span in Jaeger's JSON."""
    references = []
    if s.parent_span_id:
        references.append({"refType": "CHILD_OF", "traceID": s.trace_id, "spanID": s.parent_span_id})
    references.extend({"refType": "FOLLOWS_FROM", "traceID": lk.trace_id, "spanID": lk.span_id} for lk in s.links)
    span_tags = tags(s.attributes)
    if s.resource.scope_name:
        span_tags.append(tag("otel.scope.name", s.resource.scope_name))
    if s.resource.scope_version:
        span_tags.append(tag("otel.scope.version", s.resource.scope_version))
    kind = SPAN_KIND_NAMES.get(s.kind, "unspecified")
    if kind not in ("unspecified",):
        span_tags.append(tag("span.kind", kind))
    if s.status_code == STATUS_ERROR:
        span_tags.append(tag("otel.status_code", "ERROR"))
        span_tags.append(tag("error", True))
    elif s.status_code == STATUS_OK:
        span_tags.append(tag("otel.status_code", "OK"))
    if s.status_message:
        span_tags.append(tag("otel.status_description", s.status_message))
    warnings = []
    if s.dropped_attributes_count:
        warnings.append(f"{s.dropped_attributes_count} attributes were dropped")
    if s.dropped_events_count:
        warnings.append(f"{s.dropped_events_count} events were dropped")
    if s.dropped_links_count:
        warnings.append(f"{s.dropped_links_count} links were dropped")
    return {
        "traceID": s.trace_id,
        "spanID": s.span_id,
        "flags": s.flags,
        "operationName": s.name,
        "references": references,
        "startTime": s.start_ns // 1000,
        "duration": s.duration_ns // 1000,
        "tags": span_tags,
        "logs": [
            {"timestamp": e.time_ns // 1000, "fields": [tag("event", e.name), *tags(e.attributes)]} for e in s.events
        ],
        "processID": process_id,
        "warnings": warnings or None,
    }


def dependencies(edges: list[Edge]) -> list[dict[str, Any]]:
    """Jaeger's dependency links."""
    return [{"parent": e.parent, "child": e.child, "callCount": e.call_count} for e in edges]
