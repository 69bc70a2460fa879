"""Decode OTLP/JSON trace export requests into :mod:`collectors.model` spans.

The walker reads the JSON mapping by hand (not through protobuf's ``json_format``, about
ten times slower) into the same model objects as the protobuf decoder in
:mod:`collectors.otlp`, which re-exports :func:`decode_json`; a Hypothesis property in
the tests holds the two to agreeing field for field. The JSON text is parsed by orjson.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import orjson

from collectors.model import BYTES_MARKER, DecodedBatch, Rejection, Resource, Span, SpanEvent, SpanLink
from collectors.otlp_fields import (
    DEFAULT_LIMITS,
    DecodeError,
    Limits,
    SpanError,
    SpanWalker,
    as_double,
    as_enum,
    as_int,
    check_times,
    get_field,
    json_id,
    json_list,
    json_uint,
    one_line,
    require_object,
    span_list,
    span_str,
    str_field,
)

_KIND_BY_NAME = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_BY_NAME = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_MISSING = object()


def decode_json(body: bytes, limits: Limits = DEFAULT_LIMITS) -> DecodedBatch:
    """Decode an ExportTraceServiceRequest in the OTLP/JSON mapping.

    Accepts lowerCamelCase and original field names, hex ids in either case, 64-bit
    integers as strings or numbers, enums as integers or names. Raises DecodeError for
    invalid JSON or a top-level shape that is not a request.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson is strict where the json module is lenient (NaN literals, integers beyond
        # 64 bits, lone surrogates, other Unicode encodings): let that one decide and word
        # the error, so both accept exactly what the json module did.
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise DecodeError(f"body is not valid JSON: {one_line(err)}") from err
    if not isinstance(doc, dict):
        raise DecodeError("body must be a JSON object with a resourceSpans array")
    walker = _JsonWalker(limits)
    for ri, rs in enumerate(json_list(doc, "resourceSpans", "resource_spans", where="request")):
        where_r = f"resourceSpans[{ri}]"
        require_object(rs, where_r)
        resource_doc = get_field(rs, "resource") or {}
        require_object(resource_doc, f"{where_r}.resource")
        try:
            res_attrs = walker.json_attributes(
                json_list(resource_doc, "attributes", where=f"{where_r}.resource"), f"{where_r}.resource"
            )
        except SpanError as err:
            raise DecodeError(str(err)) from err
        for si, ss in enumerate(json_list(rs, "scopeSpans", "scope_spans", where=where_r)):
            where_s = f"{where_r}.scopeSpans[{si}]"
            require_object(ss, where_s)
            scope = get_field(ss, "scope") or {}
            require_object(scope, f"{where_s}.scope")
            try:
                scope_attrs = walker.json_attributes(
                    json_list(scope, "attributes", where=f"{where_s}.scope"), f"{where_s}.scope"
                )
                resource = walker.resource(
                    res_attrs,
                    walker.text(str_field(scope, "name", f"{where_s}.scope")),
                    walker.text(str_field(scope, "version", f"{where_s}.scope")),
                    scope_attrs,
                )
            except SpanError as err:
                raise DecodeError(str(err)) from err
            for pi, span in enumerate(json_list(ss, "spans", where=where_s)):
                where = f"{where_s}.spans[{pi}]"
                try:
                    require_object(span, where)
                    walker.batch.spans.append(walker.json_span(span, resource, where))
                except (SpanError, DecodeError) as err:
                    walker.batch.rejections.append(Rejection(where, str(err)))
    walker.batch.truncated = walker.truncated
    return walker.batch


class _JsonWalker(SpanWalker):
    """Walks a parsed OTLP/JSON request (dicts and lists) into spans."""

    def json_attributes(self, kvs: list, where: str) -> dict[str, Any]:
        # As pb_attributes: common scalars inline (the position text for error messages is
        # built only when needed), keys cleaned once per request.
        out: dict[str, Any] = {}
        limit = self.limits.max_attributes
        longest = self.limits.max_value_length
        keys = self._keys
        text = self.text
        for i, kv in enumerate(kvs):
            if len(out) >= limit:
                self.truncated += 1
                break
            if type(kv) is not dict or type(raw := kv.get("key")) is not str:
                raise SpanError(f"{where}.attributes[{i}]: expected an object with a string key")
            doc = kv.get("value")
            value = _MISSING
            if type(doc) is dict and len(doc) == 1:
                if type(x := doc.get("stringValue")) is str:
                    value = x if x.isascii() and len(x) <= longest and "\x00" not in x else text(x)
                elif type(x := doc.get("intValue")) is str and len(x) <= 18 and x.isascii() and x.isdigit():
                    value = int(x)
                elif type(x := doc.get("boolValue")) is bool:
                    value = x
            if value is _MISSING:
                value = self.json_value(doc, f"{where}.attributes[{i}]", 0)
            key = keys.get(raw)
            if key is None:
                key = keys[raw] = text(raw)
            out[key] = value
        return out

    def json_value(self, v: Any, where: str, depth: int) -> Any:
        if v is None or v == {}:
            return None
        if not isinstance(v, dict) or len(v) != 1:
            raise SpanError(f"{where}.value: expected an AnyValue object with one field")
        ((name, x),) = v.items()
        if name in ("stringValue", "string_value"):
            if not isinstance(x, str):
                raise SpanError(f"{where}.value.stringValue: expected a string")
            return self.text(x)
        if name in ("intValue", "int_value"):
            return as_int(x, f"{where}.value.intValue")
        if name in ("boolValue", "bool_value"):
            if not isinstance(x, bool):
                raise SpanError(f"{where}.value.boolValue: expected true or false")
            return x
        if name in ("doubleValue", "double_value"):
            return as_double(x, f"{where}.value.doubleValue")
        if name in ("bytesValue", "bytes_value"):
            if not isinstance(x, str):
                raise SpanError(f"{where}.value.bytesValue: expected base64 text")
            try:
                raw = base64.b64decode(x + "=" * (-len(x) % 4), altchars=b"-_" if "-" in x or "_" in x else None)
            except (binascii.Error, ValueError) as err:
                raise SpanError(f"{where}.value.bytesValue: invalid base64") from err
            return {BYTES_MARKER: base64.b64encode(raw).decode("ascii")}
        if depth >= self.limits.max_depth:
            raise SpanError(f"{where}: attribute value nested deeper than {self.limits.max_depth}")
        if name in ("arrayValue", "array_value"):
            if not isinstance(x, dict):
                raise SpanError(f"{where}.value.arrayValue: expected an object")
            values = x.get("values") or []
            if not isinstance(values, list):
                raise SpanError(f"{where}.value.arrayValue.values: expected an array")
            return [self.json_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(values)]
        if name in ("kvlistValue", "kvlist_value"):
            if not isinstance(x, dict):
                raise SpanError(f"{where}.value.kvlistValue: expected an object")
            values = x.get("values") or []
            if not isinstance(values, list):
                raise SpanError(f"{where}.value.kvlistValue.values: expected an array")
            out = {}
            for i, kv in enumerate(values):
                if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
                    raise SpanError(f"{where}.values[{i}]: expected an object with a string key")
                out[self.text(kv["key"])] = self.json_value(kv.get("value"), f"{where}.values[{i}]", depth + 1)
            return out
        raise SpanError(f"{where}.value: unknown AnyValue field {name!r}")

    def json_span(self, span: dict, resource: Resource, where: str) -> Span:
        # Fields absent from a span are the common case (no events, no links, no dropped
        # counts), so each is looked up once and only present ones go through the checks.
        get = span.get
        trace_id = json_id(get_field(span, "traceId", "trace_id"), 32, "traceId")
        span_id = json_id(get_field(span, "spanId", "span_id"), 16, "spanId")
        raw_parent = get_field(span, "parentSpanId", "parent_span_id")
        parent = json_id(raw_parent, 16, "parentSpanId") if raw_parent else ""
        start = json_uint(get_field(span, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano")
        end = json_uint(get_field(span, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano")
        check_times(start, end)
        raw_attrs = span_list(span, "attributes")
        attrs = self.json_attributes(raw_attrs, where) if raw_attrs else {}
        events, dropped_events = self.repeated(
            span_list(span, "events"),
            "events",
            json_uint(get_field(span, "droppedEventsCount", "dropped_events_count"), "droppedEventsCount"),
            self.limits.max_events,
            self._json_event,
            where,
        )
        links, dropped_links = self.repeated(
            span_list(span, "links"),
            "links",
            json_uint(get_field(span, "droppedLinksCount", "dropped_links_count"), "droppedLinksCount"),
            self.limits.max_links,
            self._json_link,
            where,
        )
        status = get("status") or {}
        if type(status) is not dict:
            raise SpanError("status: expected an object")
        code = status.get("code") or 0
        kind = get("kind") or 0
        return Span(
            trace_id,
            span_id,
            parent,
            self.text(span_str(span, "name")),
            kind if type(kind) is int and 0 <= kind < 2**31 else as_enum(kind, _KIND_BY_NAME, "kind"),
            start,
            end,
            resource,
            attrs,
            events,
            links,
            code if type(code) is int and 0 <= code < 2**31 else as_enum(code, _STATUS_BY_NAME, "status.code"),
            self.text(span_str(status, "message")),
            self.text(span_str(span, "traceState", "trace_state")),
            json_uint(get("flags"), "flags"),
            json_uint(get_field(span, "droppedAttributesCount", "dropped_attributes_count"), "droppedAttributesCount")
            + len(raw_attrs)
            - len(attrs),
            dropped_events,
            dropped_links,
        )

    def _json_event(self, e: Any, where: str) -> SpanEvent:
        if not isinstance(e, dict):
            raise SpanError(f"{where}: expected an object")
        return SpanEvent(
            as_int(get_field(e, "timeUnixNano", "time_unix_nano") or 0, "events.timeUnixNano"),
            self.text(span_str(e, "name")),
            self.json_attributes(span_list(e, "attributes"), where),
            as_int(
                get_field(e, "droppedAttributesCount", "dropped_attributes_count") or 0, "events.droppedAttributesCount"
            ),
        )

    def _json_link(self, link: Any, where: str) -> SpanLink:
        if not isinstance(link, dict):
            raise SpanError(f"{where}: expected an object")
        return SpanLink(
            json_id(get_field(link, "traceId", "trace_id"), 32, "links.traceId"),
            json_id(get_field(link, "spanId", "span_id"), 16, "links.spanId"),
            self.json_attributes(span_list(link, "attributes"), where),
            self.text(span_str(link, "traceState", "trace_state")),
        )
