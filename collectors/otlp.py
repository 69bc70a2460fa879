"""Decode OTLP trace export requests (protobuf or JSON) into :mod:`collectors.model` spans.

Both decoders walk the request by hand into the same model objects, so they agree
field for field (a Hypothesis property in the tests holds them to it). The JSON walker
does not go through protobuf's ``json_format``, which is about ten times slower;
the JSON text itself is parsed by orjson.

Structural problems (a body that is not protobuf, not JSON, or of the wrong shape)
raise :class:`DecodeError`, which the receiver answers with 400. Problems confined to
one span (ids of the wrong length, end before start, values nested too deep) reject
just that span: it lands in :attr:`DecodedBatch.rejections` and the rest are kept.
Oversized parts (too many attributes, overlong strings) are truncated, counted in
``dropped_*`` fields and reported as warnings, as the OpenTelemetry SDK's own limits do.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.message import DecodeError as _ProtoDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collectors.model import (
    BYTES_MARKER,
    DecodedBatch,
    Rejection,
    Resource,
    Span,
    SpanEvent,
    SpanLink,
)

SERVICE_NAME = "service.name"
UNKNOWN_SERVICE = "unknown_service"

_KIND_BY_NAME = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_BY_NAME = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_HEX = frozenset("0123456789abcdef")
_MISSING = object()
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_SURROGATES = re.compile("[\ud800-\udfff]")


class DecodeError(ValueError):
    """The request body cannot be read as an OTLP trace export request."""


class _SpanError(ValueError):
    """One span is invalid; it is rejected and the others are kept."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-span bounds applied at ingest (all settings, documented in the README)."""

    max_attributes: int = 256
    max_value_length: int = 32768
    max_events: int = 512
    max_links: int = 512
    max_depth: int = 16


DEFAULT_LIMITS = Limits()


def decode_protobuf(body: bytes, limits: Limits = DEFAULT_LIMITS) -> DecodedBatch:
    """Decode a binary ExportTraceServiceRequest.

    Raises DecodeError when the bytes are not a valid message (truncated, random,
    invalid UTF-8 in a string field, nesting beyond protobuf's own recursion limit).
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (_ProtoDecodeError, RecursionError) as err:
        raise DecodeError(f"body is not a valid protobuf ExportTraceServiceRequest: {err}") from err
    walker = _Walker(limits)
    for ri, rs in enumerate(request.resource_spans):
        res_attrs = walker.pb_attributes(rs.resource.attributes, f"resourceSpans[{ri}].resource")
        for si, ss in enumerate(rs.scope_spans):
            scope = ss.scope
            resource = walker.resource(
                res_attrs,
                walker.text(scope.name),
                walker.text(scope.version),
                walker.pb_attributes(scope.attributes, f"resourceSpans[{ri}].scopeSpans[{si}].scope"),
            )
            for pi, span in enumerate(ss.spans):
                where = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                try:
                    walker.batch.spans.append(walker.pb_span(span, resource, where))
                except _SpanError as err:
                    walker.batch.rejections.append(Rejection(where, str(err)))
    walker.batch.truncated = walker.truncated
    return walker.batch


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
            raise DecodeError(f"body is not valid JSON: {_one_line(err)}") from err
    if not isinstance(doc, dict):
        raise DecodeError("body must be a JSON object with a resourceSpans array")
    walker = _Walker(limits)
    for ri, rs in enumerate(_list(doc, "resourceSpans", "resource_spans", where="request")):
        where_r = f"resourceSpans[{ri}]"
        _require_object(rs, where_r)
        resource_doc = _get(rs, "resource") or {}
        _require_object(resource_doc, f"{where_r}.resource")
        try:
            res_attrs = walker.json_attributes(
                _list(resource_doc, "attributes", where=f"{where_r}.resource"), f"{where_r}.resource"
            )
        except _SpanError as err:
            raise DecodeError(str(err)) from err
        for si, ss in enumerate(_list(rs, "scopeSpans", "scope_spans", where=where_r)):
            where_s = f"{where_r}.scopeSpans[{si}]"
            _require_object(ss, where_s)
            scope = _get(ss, "scope") or {}
            _require_object(scope, f"{where_s}.scope")
            try:
                scope_attrs = walker.json_attributes(
                    _list(scope, "attributes", where=f"{where_s}.scope"), f"{where_s}.scope"
                )
                resource = walker.resource(
                    res_attrs,
                    walker.text(_str(scope, "name", f"{where_s}.scope")),
                    walker.text(_str(scope, "version", f"{where_s}.scope")),
                    scope_attrs,
                )
            except _SpanError as err:
                raise DecodeError(str(err)) from err
            for pi, span in enumerate(_list(ss, "spans", where=where_s)):
                where = f"{where_s}.spans[{pi}]"
                try:
                    _require_object(span, where)
                    walker.batch.spans.append(walker.json_span(span, resource, where))
                except (_SpanError, DecodeError) as err:
                    walker.batch.rejections.append(Rejection(where, str(err)))
    walker.batch.truncated = walker.truncated
    return walker.batch


def encode_response(rejected: int, message: str, *, as_json: bool) -> tuple[bytes, str]:
    """Build an ExportTraceServiceResponse body and its content type."""
    if as_json:
        doc: dict[str, Any] = {}
        if rejected or message:
            partial: dict[str, Any] = {}
            if rejected:
                partial["rejectedSpans"] = str(rejected)
            if message:
                partial["errorMessage"] = message
            doc["partialSuccess"] = partial
        return json.dumps(doc).encode(), "application/json"
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response.SerializeToString(), "application/x-protobuf"


class _Walker:
    """Shared state of one decode: limits, warnings, and the resource cache."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.batch = DecodedBatch()
        self.truncated = 0
        self._keys: dict[str, str] = {}

    # -- shared helpers -------------------------------------------------------------

    def text(self, value: str) -> str:
        """Clean untrusted text: bound its length, drop NUL and lone surrogates."""
        if len(value) > self.limits.max_value_length:
            value = value[: self.limits.max_value_length]
            self.truncated += 1
        if not value.isascii():
            value = _SURROGATES.sub("\ufffd", value)
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL; keep it visible as U+FFFD.
            value = value.replace("\x00", "\ufffd")
        return value

    def resource(
        self, attrs: dict[str, Any], scope_name: str, scope_version: str, scope_attrs: dict[str, Any]
    ) -> Resource:
        service = attrs.get(SERVICE_NAME)
        if not isinstance(service, str) or not service:
            service = UNKNOWN_SERVICE
        return Resource(service, attrs, scope_name, scope_version, scope_attrs)

    def _limit(self, items: list, limit: int) -> tuple[list, int]:
        if len(items) > limit:
            self.truncated += 1
            return items[:limit], len(items) - limit
        return items, 0

    # -- protobuf ---------------------------------------------------------------------

    def pb_attributes(self, kvs: Any, where: str) -> dict[str, Any]:
        # The hot loop of decoding: scalar values are read inline, plain strings (ASCII,
        # short, no NUL: nearly all) skip the cleaning call, and keys (which repeat on
        # every span) are cleaned once per request.
        out: dict[str, Any] = {}
        limit = self.limits.max_attributes
        longest = self.limits.max_value_length
        keys = self._keys
        text = self.text
        for kv in kvs:
            if len(out) >= limit:
                self.truncated += 1
                break
            v = kv.value
            which = v.WhichOneof("value")
            if which == "string_value":
                value = v.string_value
                if not (value.isascii() and len(value) <= longest and "\x00" not in value):
                    value = text(value)
            elif which == "int_value":
                value = v.int_value
            elif which == "bool_value":
                value = v.bool_value
            elif which == "double_value":
                value = v.double_value
            else:
                value = self.pb_value(v, where, 0)
            raw = kv.key
            key = keys.get(raw)
            if key is None:
                key = keys[raw] = text(raw)
            out[key] = value
        return out

    def pb_value(self, v: Any, where: str, depth: int) -> Any:
        which = v.WhichOneof("value")
        if which == "string_value":
            return self.text(v.string_value)
        if which == "int_value":
            return v.int_value
        if which == "bool_value":
            return v.bool_value
        if which == "double_value":
            return v.double_value
        if depth >= self.limits.max_depth:
            raise _SpanError(f"{where}: attribute value nested deeper than {self.limits.max_depth}")
        if which == "array_value":
            return [self.pb_value(x, where, depth + 1) for x in v.array_value.values]
        if which == "kvlist_value":
            return {self.text(kv.key): self.pb_value(kv.value, where, depth + 1) for kv in v.kvlist_value.values}
        if which == "bytes_value":
            return {BYTES_MARKER: base64.b64encode(v.bytes_value).decode("ascii")}
        return None

    def pb_span(self, span: Any, resource: Resource, where: str) -> Span:
        trace_id, span_id = span.trace_id, span.span_id
        if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
            _pb_id(trace_id, 16, "traceId")
        if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
            _pb_id(span_id, 8, "spanId")
        parent = span.parent_span_id
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        _check_times(start, end)
        raw_attrs = span.attributes
        attrs = self.pb_attributes(raw_attrs, where) if raw_attrs else {}
        text = self.text
        events, dropped_events = self._repeated(
            span.events, "events", span.dropped_events_count, self.limits.max_events, self._pb_event, where
        )
        links, dropped_links = self._repeated(
            span.links, "links", span.dropped_links_count, self.limits.max_links, self._pb_link, where
        )
        status = span.status
        name, message, trace_state = span.name, status.message, span.trace_state
        return Span(
            trace_id.hex(),
            span_id.hex(),
            _pb_id(parent, 8, "parentSpanId") if parent else "",
            name if name.isascii() and len(name) <= self.limits.max_value_length and "\x00" not in name else text(name),
            span.kind,
            start,
            end,
            resource,
            attrs,
            events,
            links,
            status.code,
            text(message) if message else "",
            text(trace_state) if trace_state else "",
            span.flags,
            span.dropped_attributes_count + len(raw_attrs) - len(attrs),
            dropped_events,
            dropped_links,
        )

    def _repeated(self, items: Any, name: str, dropped: int, limit: int, build: Any, where: str) -> tuple[tuple, int]:
        """A span's events or links (protobuf or JSON), built within the limit, each told
        where it is; and the span's dropped count plus those cut off."""
        if not items:
            return (), dropped
        kept, cut = self._limit(list(items), limit)
        return tuple(build(item, f"{where}.{name}[{i}]") for i, item in enumerate(kept)), dropped + cut

    def _pb_event(self, e: Any, where: str) -> SpanEvent:
        return SpanEvent(
            e.time_unix_nano, self.text(e.name), self.pb_attributes(e.attributes, where), e.dropped_attributes_count
        )

    def _pb_link(self, link: Any, where: str) -> SpanLink:
        return SpanLink(
            _pb_id(link.trace_id, 16, "links.traceId"),
            _pb_id(link.span_id, 8, "links.spanId"),
            self.pb_attributes(link.attributes, where),
            self.text(link.trace_state),
        )

    # -- JSON ---------------------------------------------------------------------------

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
                raise _SpanError(f"{where}.attributes[{i}]: expected an object with a string key")
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
            raise _SpanError(f"{where}.value: expected an AnyValue object with one field")
        ((name, x),) = v.items()
        if name in ("stringValue", "string_value"):
            if not isinstance(x, str):
                raise _SpanError(f"{where}.value.stringValue: expected a string")
            return self.text(x)
        if name in ("intValue", "int_value"):
            return _int(x, f"{where}.value.intValue")
        if name in ("boolValue", "bool_value"):
            if not isinstance(x, bool):
                raise _SpanError(f"{where}.value.boolValue: expected true or false")
            return x
        if name in ("doubleValue", "double_value"):
            return _double(x, f"{where}.value.doubleValue")
        if name in ("bytesValue", "bytes_value"):
            if not isinstance(x, str):
                raise _SpanError(f"{where}.value.bytesValue: expected base64 text")
            try:
                raw = base64.b64decode(x + "=" * (-len(x) % 4), altchars=b"-_" if "-" in x or "_" in x else None)
            except (binascii.Error, ValueError) as err:
                raise _SpanError(f"{where}.value.bytesValue: invalid base64") from err
            return {BYTES_MARKER: base64.b64encode(raw).decode("ascii")}
        if depth >= self.limits.max_depth:
            raise _SpanError(f"{where}: attribute value nested deeper than {self.limits.max_depth}")
        if name in ("arrayValue", "array_value"):
            if not isinstance(x, dict):
                raise _SpanError(f"{where}.value.arrayValue: expected an object")
            values = x.get("values") or []
            if not isinstance(values, list):
                raise _SpanError(f"{where}.value.arrayValue.values: expected an array")
            return [self.json_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(values)]
        if name in ("kvlistValue", "kvlist_value"):
            if not isinstance(x, dict):
                raise _SpanError(f"{where}.value.kvlistValue: expected an object")
            values = x.get("values") or []
            if not isinstance(values, list):
                raise _SpanError(f"{where}.value.kvlistValue.values: expected an array")
            out = {}
            for i, kv in enumerate(values):
                if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
                    raise _SpanError(f"{where}.values[{i}]: expected an object with a string key")
                out[self.text(kv["key"])] = self.json_value(kv.get("value"), f"{where}.values[{i}]", depth + 1)
            return out
        raise _SpanError(f"{where}.value: unknown AnyValue field {name!r}")

    def json_span(self, span: dict, resource: Resource, where: str) -> Span:
        # Fields absent from a span are the common case (no events, no links, no dropped
        # counts), so each is looked up once and only present ones go through the checks.
        get = span.get
        trace_id = _json_id(_get(span, "traceId", "trace_id"), 32, "traceId")
        span_id = _json_id(_get(span, "spanId", "span_id"), 16, "spanId")
        raw_parent = _get(span, "parentSpanId", "parent_span_id")
        parent = _json_id(raw_parent, 16, "parentSpanId") if raw_parent else ""
        start = _json_uint(_get(span, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano")
        end = _json_uint(_get(span, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano")
        _check_times(start, end)
        raw_attrs = _span_list(span, "attributes")
        attrs = self.json_attributes(raw_attrs, where) if raw_attrs else {}
        events, dropped_events = self._repeated(
            _span_list(span, "events"),
            "events",
            _json_uint(_get(span, "droppedEventsCount", "dropped_events_count"), "droppedEventsCount"),
            self.limits.max_events,
            self._json_event,
            where,
        )
        links, dropped_links = self._repeated(
            _span_list(span, "links"),
            "links",
            _json_uint(_get(span, "droppedLinksCount", "dropped_links_count"), "droppedLinksCount"),
            self.limits.max_links,
            self._json_link,
            where,
        )
        status = get("status") or {}
        if type(status) is not dict:
            raise _SpanError("status: expected an object")
        code = status.get("code") or 0
        kind = get("kind") or 0
        return Span(
            trace_id,
            span_id,
            parent,
            self.text(_span_str(span, "name")),
            kind if type(kind) is int and 0 <= kind < 2**31 else _enum(kind, _KIND_BY_NAME, "kind"),
            start,
            end,
            resource,
            attrs,
            events,
            links,
            code if type(code) is int and 0 <= code < 2**31 else _enum(code, _STATUS_BY_NAME, "status.code"),
            self.text(_span_str(status, "message")),
            self.text(_span_str(span, "traceState", "trace_state")),
            _json_uint(get("flags"), "flags"),
            _json_uint(_get(span, "droppedAttributesCount", "dropped_attributes_count"), "droppedAttributesCount")
            + len(raw_attrs)
            - len(attrs),
            dropped_events,
            dropped_links,
        )

    def _json_event(self, e: Any, where: str) -> SpanEvent:
        if not isinstance(e, dict):
            raise _SpanError(f"{where}: expected an object")
        return SpanEvent(
            _int(_get(e, "timeUnixNano", "time_unix_nano") or 0, "events.timeUnixNano"),
            self.text(_span_str(e, "name")),
            self.json_attributes(_span_list(e, "attributes"), where),
            _int(_get(e, "droppedAttributesCount", "dropped_attributes_count") or 0, "events.droppedAttributesCount"),
        )

    def _json_link(self, link: Any, where: str) -> SpanLink:
        if not isinstance(link, dict):
            raise _SpanError(f"{where}: expected an object")
        return SpanLink(
            _json_id(_get(link, "traceId", "trace_id"), 32, "links.traceId"),
            _json_id(_get(link, "spanId", "span_id"), 16, "links.spanId"),
            self.json_attributes(_span_list(link, "attributes"), where),
            self.text(_span_str(link, "traceState", "trace_state")),
        )


# -- module helpers -------------------------------------------------------------------


def _pb_id(raw: bytes, size: int, field: str) -> str:
    if len(raw) != size:
        raise _SpanError(f"{field} must be {size} bytes, got {len(raw)}")
    if not any(raw):
        raise _SpanError(f"{field} must not be all zeros")
    return raw.hex()


def _json_id(raw: Any, size: int, field: str) -> str:
    if not isinstance(raw, str):
        raise _SpanError(f"{field} must be a hex string of {size} characters")
    value = raw.lower()
    if len(value) != size or not _HEX.issuperset(value):
        raise _SpanError(f"{field} must be {size} hex characters, got {raw[:40]!r}")
    if value.count("0") == size:
        raise _SpanError(f"{field} must not be all zeros")
    return value


def _check_times(start: int, end: int) -> None:
    if start <= 0:
        raise _SpanError("startTimeUnixNano is missing")
    if end < start:
        raise _SpanError(f"endTimeUnixNano ({end}) is before startTimeUnixNano ({start})")


def _int(x: Any, field: str) -> int:
    if isinstance(x, bool):
        raise _SpanError(f"{field}: expected an integer, got {x!r}")
    if isinstance(x, int):
        value = x
    elif isinstance(x, str):
        try:
            value = int(x, 10)
        except ValueError as err:
            raise _SpanError(f"{field}: expected an integer, got {x[:40]!r}") from err
    elif isinstance(x, float) and x.is_integer():
        value = int(x)
    else:
        raise _SpanError(f"{field}: expected an integer, got {str(x)[:40]!r}")
    if not -(2**63) <= value < 2**64:
        raise _SpanError(f"{field}: {value} does not fit in 64 bits")
    return value


def _json_uint(x: Any, field: str) -> int:
    """An absent or unsigned 64-bit integer field: decimal text (the OTLP/JSON form) inline,
    anything else through :func:`_int`'s checks."""
    if not x:
        return 0
    if type(x) is str and len(x) < 20 and x.isascii() and x.isdigit():
        return int(x)
    return _int(x, field)


def _double(x: Any, field: str) -> float:
    if isinstance(x, bool):
        raise _SpanError(f"{field}: expected a number")
    if isinstance(x, (int, float)):
        return float(x)
    if x in ("NaN", "Infinity", "-Infinity"):
        return float(x.replace("Infinity", "inf"))
    if isinstance(x, str):
        try:
            value = float(x)
        except ValueError as err:
            raise _SpanError(f"{field}: expected a number, got {x[:40]!r}") from err
        if math.isfinite(value):
            return value
    raise _SpanError(f"{field}: expected a number, got {str(x)[:40]!r}")


def _enum(x: Any, names: dict[str, int], field: str) -> int:
    if isinstance(x, str) and x in names:
        return names[x]
    value = _int(x, field)
    if not 0 <= value < 2**31:
        raise _SpanError(f"{field}: {value} is not a valid enum value")
    return value


def _get(doc: dict, *names: str) -> Any:
    for name in names:
        if name in doc:
            return doc[name]
    return None


def _list(doc: dict, *names: str, where: str) -> list:
    value = _get(doc, *names)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"{where}.{names[0]}: expected an array")
    return value


def _span_list(doc: dict, *names: str) -> list:
    value = _get(doc, *names)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _SpanError(f"{names[0]}: expected an array")
    return value


def _str(doc: dict, name: str, where: str) -> str:
    value = doc.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"{where}.{name}: expected a string")
    return value


def _span_str(doc: dict, *names: str) -> str:
    value = _get(doc, *names)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _SpanError(f"{names[0]}: expected a string")
    return value


def _require_object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: expected an object")


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:200]
