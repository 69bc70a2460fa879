"""Decode Zipkin v2 JSON span lists (``POST /api/v2/spans``) into :mod:`collectors.model` spans.

For services still on Zipkin instrumentation (Brave, zipkin-js, py_zipkin, OpenTelemetry's
Zipkin exporter). The mapping is OpenTelemetry's Zipkin exporter mapping read backwards
(opentelemetry-specification, ``trace/sdk_exporters/zipkin.md``):

- ``localEndpoint.serviceName`` is the resource's ``service.name`` (``unknown_service``
  without one); ``remoteEndpoint`` becomes ``peer.service``, ``network.peer.address`` and
  ``network.peer.port`` (a tag of the same name wins), ``localEndpoint``'s address and port
  ``network.local.address`` and ``network.local.port``;
- ``kind`` CLIENT, SERVER, PRODUCER, CONSUMER as in OTLP; none is INTERNAL;
- ``tags`` are string attributes, except the tags the exporter writes for what has a field
  of its own in OTLP: ``error`` (status ERROR; its value, unless empty or ``true``, the
  status message), ``otel.status_code`` (OK or ERROR), ``otel.status_description``,
  ``otel.scope.name`` and ``otel.scope.version`` (or the older ``otel.library.*``, the
  instrumentation scope), ``otel.dropped_*_count`` (the dropped counts), and a
  ``service.name`` tag repeating the local endpoint's;
- ``annotations`` are events at their timestamp, named by their value; a value that is a
  JSON object of one name and its attributes (``{"name": {"key": value}}``, what the
  exporter writes for an event with attributes) is read back as both;
- ``timestamp`` and ``duration`` are microseconds; trace ids of 64 bits (16 hex digits)
  are 128-bit ids with zeros in front, as OpenTelemetry's Zipkin receiver reads them;
- a ``shared`` span (the server side of an RPC that reused the client's span id, as B3
  propagation without span ids per side does) gets a span id of its own, derived from
  the trace and span ids so a re-sent batch gives the same one, and the client's span as
  its parent, as Jaeger does with such spans; a span of the same service under the
  shared id in the same request goes under the server half.

Zipkin has no partial success: a span with a field of the wrong type or value refuses
the whole list with :class:`DecodeError` naming the span and the field (a 400), and
nothing of it is stored. Oversized parts are cut to the same limits as OTLP and counted
in the dropped counts.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from collectors.model import DecodedBatch, Resource, Span, SpanEvent
from collectors.otlp_fields import DEFAULT_LIMITS, SERVICE_NAME, UNKNOWN_SERVICE, DecodeError, Limits, SpanWalker

KINDS = {None: 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS = {"OK": 1, "ERROR": 2}
_HEX = re.compile(r"[0-9a-fA-F]+")
_MAX_MICROS = (2**63 - 1) // 1000
_SCOPE_NAME_TAGS = ("otel.scope.name", "otel.library.name")
_SCOPE_VERSION_TAGS = ("otel.scope.version", "otel.library.version")
_DROPPED_TAGS = ("otel.dropped_attributes_count", "otel.dropped_events_count", "otel.dropped_links_count")


def decode_zipkin_json(body: bytes, limits: Limits = DEFAULT_LIMITS) -> DecodedBatch:
    """Decode a Zipkin v2 JSON list of spans; raises DecodeError for invalid JSON, a body that
    is not a list of span objects, or a span field of the wrong type or value."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise DecodeError(f"body is not valid JSON: {' '.join(str(err).split())[:200]}") from err
    if not isinstance(doc, list):
        raise DecodeError("body must be a JSON array of Zipkin v2 spans")
    reader = _Reader(limits)
    for i, span in enumerate(doc):
        where = f"spans[{i}]"
        if not isinstance(span, dict):
            raise DecodeError(f"{where}: expected a span object")
        reader.batch.spans.append(reader.span(span, where))
    reader.reparent_under_shared()
    reader.batch.truncated = reader.truncated
    return reader.batch


class _Reader(SpanWalker):
    """State of one decode (limits, text cleaning and truncation count as for OTLP), the
    resources met so far and the ids given to shared spans."""

    def __init__(self, limits: Limits) -> None:
        super().__init__(limits)
        self._resources: dict[tuple[str, str, str], Resource] = {}
        self._shared: dict[tuple[str, str, str], str] = {}
        """(trace id, span id as sent, service) of each shared span: the id it was given."""

    def span(self, doc: dict[str, Any], where: str) -> Span:
        trace_id = _id(doc.get("traceId"), 32, f"{where}.traceId")
        span_id = _id(doc.get("id"), 16, f"{where}.id")
        parent = doc.get("parentId")
        parent_id = _id(parent, 16, f"{where}.parentId") if parent not in (None, "") else ""
        kind = doc.get("kind")
        if kind not in KINDS:
            raise DecodeError(f"{where}.kind: expected CLIENT, SERVER, PRODUCER, CONSUMER or none, got {kind!r:.40}")
        start_us = _micros(doc.get("timestamp"), f"{where}.timestamp")
        if start_us is None or start_us <= 0:
            raise DecodeError(f"{where}.timestamp: missing; a span needs its start in microseconds since the epoch")
        duration_us = _micros(doc.get("duration"), f"{where}.duration") or 0
        if start_us + duration_us > _MAX_MICROS:
            raise DecodeError(f"{where}.duration: the span ends past what 64-bit nanoseconds can hold")
        tags = self._tags(doc.get("tags"), f"{where}.tags")
        local = _endpoint(doc.get("localEndpoint"), f"{where}.localEndpoint")
        remote = _endpoint(doc.get("remoteEndpoint"), f"{where}.remoteEndpoint")
        service = self.text(local.get("serviceName") or "") or UNKNOWN_SERVICE
        if tags.get(SERVICE_NAME) == service:
            del tags[SERVICE_NAME]
        code, message = _status(tags)
        dropped = [_pop_count(tags, name) for name in _DROPPED_TAGS]
        scope = (_pop_first(tags, _SCOPE_NAME_TAGS), _pop_first(tags, _SCOPE_VERSION_TAGS))
        _endpoint_attributes(tags, remote, "peer")
        _endpoint_attributes(tags, local, "local")
        if remote.get("serviceName"):
            tags.setdefault("peer.service", self.text(remote["serviceName"]))
        attributes, cut = self._limited(tags, self.limits.max_attributes)
        events = self._events(doc.get("annotations"), start_us, f"{where}.annotations")
        kept_events = events[: self.limits.max_events]
        if len(kept_events) < len(events):
            self.truncated += 1
        if doc.get("shared") is True:
            # The server half of a span id shared with its client: an id of its own, under it.
            parent_id = span_id
            span_id = hashlib.blake2b(f"{trace_id}/{span_id}/shared".encode(), digest_size=8).hexdigest()
            self._shared[(trace_id, parent_id, service)] = span_id
        name = doc.get("name")
        if name is not None and not isinstance(name, str):
            raise DecodeError(f"{where}.name: expected a string")
        return Span(
            trace_id,
            span_id,
            parent_id,
            self.text(name or ""),
            KINDS[kind],
            start_us * 1000,
            (start_us + duration_us) * 1000,
            self._resource(service, scope),
            attributes,
            tuple(kept_events),
            (),
            code,
            self.text(message),
            "",
            0,
            dropped[0] + cut,
            dropped[1] + len(events) - len(kept_events),
            dropped[2],
        )

    def reparent_under_shared(self) -> None:
        """A span of the same service whose parent is a shared span's id was started under
        the server half: it goes under the id that half was given (within one request)."""
        if not self._shared:
            return
        given = set(self._shared.values())
        for span in self.batch.spans:
            new_parent = self._shared.get((span.trace_id, span.parent_span_id, span.service))
            if new_parent and span.span_id not in given:
                span.parent_span_id = new_parent

    def _tags(self, doc: Any, where: str) -> dict[str, Any]:
        if doc is None:
            return {}
        if not isinstance(doc, dict):
            raise DecodeError(f"{where}: expected an object of string values")
        for key, value in doc.items():
            if not isinstance(value, str):
                raise DecodeError(f"{where}.{key:.60}: expected a string, got {type(value).__name__}")
        return {self.text(k): self.text(v) for k, v in doc.items()}

    def _limited(self, attributes: dict[str, Any], limit: int) -> tuple[dict[str, Any], int]:
        if len(attributes) <= limit:
            return attributes, 0
        self.truncated += 1
        return dict(list(attributes.items())[:limit]), len(attributes) - limit

    def _events(self, doc: Any, start_us: int, where: str) -> list[SpanEvent]:
        if doc is None:
            return []
        if not isinstance(doc, list):
            raise DecodeError(f"{where}: expected an array")
        events = []
        for i, annotation in enumerate(doc):
            if not isinstance(annotation, dict) or not isinstance(annotation.get("value"), str):
                raise DecodeError(f"{where}[{i}]: expected an object with a string value")
            at = _micros(annotation.get("timestamp"), f"{where}[{i}].timestamp") or start_us
            name, attributes = self._event_value(annotation["value"])
            kept, cut = self._limited(attributes, self.limits.max_attributes)
            events.append(SpanEvent(at * 1000, name, kept, cut))
        return events

    def _event_value(self, value: str) -> tuple[str, dict[str, Any]]:
        """An annotation's event name and attributes: ``{"name": {attributes}}`` as the
        OpenTelemetry exporter writes them, else the whole value as the name."""
        if value.startswith("{"):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict) and len(parsed) == 1:
                ((name, attributes),) = parsed.items()
                if isinstance(attributes, dict):
                    return self.text(name), {self.text(k): self._value(v) for k, v in attributes.items()}
        return self.text(value), {}

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, list) and all(not isinstance(x, (list, dict)) for x in value):
            return [self.text(x) if isinstance(x, str) else x for x in value]
        return self.text(orjson.dumps(value).decode())

    def _resource(self, service: str, scope: tuple[str, str]) -> Resource:
        key = (service, *scope)
        resource = self._resources.get(key)
        if resource is None:
            resource = self._resources[key] = Resource(service, {SERVICE_NAME: service}, scope[0], scope[1])
        return resource


def _id(raw: Any, size: int, where: str) -> str:
    """A hex id, left-padded with zeros to ``size`` digits (Zipkin's 64-bit trace ids, and
    ids whose leading zeros were left out)."""
    if not isinstance(raw, str) or not raw or len(raw) > size or not _HEX.fullmatch(raw):
        raise DecodeError(f"{where}: expected up to {size} hex digits, got {raw!r:.50}")
    if raw.count("0") == len(raw):
        raise DecodeError(f"{where}: must not be all zeros")
    return raw.lower().zfill(size)


def _micros(raw: Any, where: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= _MAX_MICROS:
        raise DecodeError(f"{where}: expected a whole number of microseconds, got {raw!r:.40}")
    return raw


def _endpoint(doc: Any, where: str) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise DecodeError(f"{where}: expected an object")
    for name in ("serviceName", "ipv4", "ipv6"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise DecodeError(f"{where}.{name}: expected a string")
    port = doc.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise DecodeError(f"{where}.port: expected a port number, got {port!r:.40}")
    return doc


def _endpoint_attributes(tags: dict[str, Any], endpoint: dict[str, Any], side: str) -> None:
    address = endpoint.get("ipv4") or endpoint.get("ipv6")
    if address:
        tags.setdefault(f"network.{side}.address", address[:64])
    if endpoint.get("port"):
        tags.setdefault(f"network.{side}.port", endpoint["port"])


def _status(tags: dict[str, Any]) -> tuple[int, str]:
    """The status code and message the ``error`` and ``otel.status_*`` tags carry (removed)."""
    code = _STATUS.get(str(tags.get("otel.status_code", "")).upper(), 0)
    if code:
        del tags["otel.status_code"]
    message = tags.pop("otel.status_description", "")
    if "error" in tags:
        code = 2
        error = tags.pop("error")
        if error.lower() not in ("", "true"):
            message = error
    return code, message if code == 2 else ""


def _pop_count(tags: dict[str, Any], name: str) -> int:
    value = tags.get(name)
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        del tags[name]
        return int(value)
    return 0


def _pop_first(tags: dict[str, Any], names: tuple[str, ...]) -> str:
    found = ""
    for name in names:
        value = tags.pop(name, None)
        if value and not found:
            found = value
    return found
