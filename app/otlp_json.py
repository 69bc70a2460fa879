"""Pure mapping from model spans back to an OTLP/JSON ExportTraceServiceRequest.

The output follows the OTLP JSON mapping (hex ids, lowerCamelCase names, enums as
integers, 64-bit integers as decimal strings), so it can be posted to any OTLP/HTTP
receiver, including Spyglass's own, and reads back as the same spans.
"""

from __future__ import annotations

import math
from typing import Any

from collectors.model import BYTES_MARKER, Resource, Span


def export_request(spans: list[Span]) -> dict[str, Any]:
    """One request with a resourceSpans entry per resource and a scopeSpans per scope."""
    groups: dict[tuple, tuple[Resource, dict[tuple, list[Span]]]] = {}
    for s in spans:
        res = s.resource
        res_key = (res.service_name, _freeze(res.attributes))
        scope_key = (res.scope_name, res.scope_version, _freeze(res.scope_attributes))
        _, scopes = groups.setdefault(res_key, (res, {}))
        scopes.setdefault(scope_key, []).append(s)
    out = []
    for res, scopes in groups.values():
        scope_spans = []
        for group in scopes.values():
            first = group[0].resource
            scope: dict[str, Any] = {"name": first.scope_name}
            if first.scope_version:
                scope["version"] = first.scope_version
            if first.scope_attributes:
                scope["attributes"] = attributes(first.scope_attributes)
            scope_spans.append({"scope": scope, "spans": [span(s) for s in group]})
        out.append({"resource": {"attributes": attributes(res.attributes)}, "scopeSpans": scope_spans})
    return {"resourceSpans": out}


def span(s: Span) -> dict[str, Any]:
    """One span in the OTLP JSON mapping."""
    doc: dict[str, Any] = {
        "traceId": s.trace_id,
        "spanId": s.span_id,
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": str(s.start_ns),
        "endTimeUnixNano": str(s.end_ns),
        "attributes": attributes(s.attributes),
    }
    if s.parent_span_id:
        doc["parentSpanId"] = s.parent_span_id
    if s.trace_state:
        doc["traceState"] = s.trace_state
    if s.flags:
        doc["flags"] = s.flags
    if s.events:
        doc["events"] = [
            {
                "timeUnixNano": str(e.time_ns),
                "name": e.name,
                "attributes": attributes(e.attributes),
                **({"droppedAttributesCount": e.dropped_attributes_count} if e.dropped_attributes_count else {}),
            }
            for e in s.events
        ]
    if s.links:
        doc["links"] = [
            {
                "traceId": lk.trace_id,
                "spanId": lk.span_id,
                "attributes": attributes(lk.attributes),
                **({"traceState": lk.trace_state} if lk.trace_state else {}),
            }
            for lk in s.links
        ]
    status: dict[str, Any] = {}
    if s.status_code:
        status["code"] = s.status_code
    if s.status_message:
        status["message"] = s.status_message
    doc["status"] = status
    for name, value in (
        ("droppedAttributesCount", s.dropped_attributes_count),
        ("droppedEventsCount", s.dropped_events_count),
        ("droppedLinksCount", s.dropped_links_count),
    ):
        if value:
            doc[name] = value
    return doc


def attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """OTLP KeyValue list."""
    return [{"key": k, "value": any_value(v)} for k, v in attrs.items()]


def any_value(value: Any) -> dict[str, Any]:
    """An OTLP AnyValue for a plain JSON attribute value."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        if set(value) == {BYTES_MARKER}:
            return {"bytesValue": value[BYTES_MARKER]}
        return {"kvlistValue": {"values": attributes(value)}}
    return {}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value
