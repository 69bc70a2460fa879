"""Decode OTLP trace export requests (protobuf or JSON) into :mod:`collectors.model` spans.

This module decodes protobuf and encodes the responses; the JSON decoder lives in
:mod:`collectors.otlp_json` (re-exported here), and what both share (errors, limits,
text cleaning, field readers) in :mod:`collectors.otlp_fields`. Both decoders walk the
request by hand into the same model objects, so they agree field for field (a
Hypothesis property in the tests holds them to it).

Structural problems (a body that is not protobuf, not JSON, or of the wrong shape)
raise :class:`DecodeError`, which the receiver answers with 400. Problems confined to
one span (ids of the wrong length, end before start, values nested too deep) reject
just that span: it lands in :attr:`DecodedBatch.rejections` and the rest are kept.
Oversized parts (too many attributes, overlong strings) are truncated, counted in
``dropped_*`` fields and reported as warnings, as the OpenTelemetry SDK's own limits do.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf.message import DecodeError as _ProtoDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collectors.model import BYTES_MARKER, DecodedBatch, Rejection, Resource, Span, SpanEvent, SpanLink
from collectors.otlp_fields import (
    DEFAULT_LIMITS,
    SERVICE_NAME,
    UNKNOWN_SERVICE,
    DecodeError,
    Limits,
    SpanError,
    SpanWalker,
    check_times,
    pb_id,
)
from collectors.otlp_json import decode_json

__all__ = [
    "DEFAULT_LIMITS",
    "SERVICE_NAME",
    "UNKNOWN_SERVICE",
    "DecodeError",
    "Limits",
    "decode_json",
    "decode_protobuf",
    "encode_response",
]

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


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
    walker = _ProtobufWalker(limits)
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
                except SpanError as err:
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


class _ProtobufWalker(SpanWalker):
    """Walks a parsed ExportTraceServiceRequest into spans."""

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
            raise SpanError(f"{where}: attribute value nested deeper than {self.limits.max_depth}")
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
            pb_id(trace_id, 16, "traceId")
        if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
            pb_id(span_id, 8, "spanId")
        parent = span.parent_span_id
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        check_times(start, end)
        raw_attrs = span.attributes
        attrs = self.pb_attributes(raw_attrs, where) if raw_attrs else {}
        text = self.text
        events, dropped_events = self.repeated(
            span.events, "events", span.dropped_events_count, self.limits.max_events, self._pb_event, where
        )
        links, dropped_links = self.repeated(
            span.links, "links", span.dropped_links_count, self.limits.max_links, self._pb_link, where
        )
        status = span.status
        name, message, trace_state = span.name, status.message, span.trace_state
        return Span(
            trace_id.hex(),
            span_id.hex(),
            pb_id(parent, 8, "parentSpanId") if parent else "",
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

    def _pb_event(self, e: Any, where: str) -> SpanEvent:
        return SpanEvent(
            e.time_unix_nano, self.text(e.name), self.pb_attributes(e.attributes, where), e.dropped_attributes_count
        )

    def _pb_link(self, link: Any, where: str) -> SpanLink:
        return SpanLink(
            pb_id(link.trace_id, 16, "links.traceId"),
            pb_id(link.span_id, 8, "links.spanId"),
            self.pb_attributes(link.attributes, where),
            self.text(link.trace_state),
        )
