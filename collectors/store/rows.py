"""Pure conversions between model objects and table rows; no database here.

Kept apart from the SQL so that the encoding (compact JSON, binary ids, the text a tag
search compares) can be read and tested on its own.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import orjson

from collectors.model import Resource, Span, SpanEvent, SpanLink

MAX_INDEXED_VALUE_LENGTH = 256
"""Attribute values longer than this are stored but not put in the tag index."""

_json_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """Compact JSON text for a stored column.

    orjson writes a span's attributes about fourteen times faster than the json module,
    but turns NaN and infinities into ``null``. So text holding a ``null`` (rare: an
    empty value or a non-finite double) is written again by the json module, which keeps
    them as ``NaN`` / ``Infinity``; :func:`loads` reads both.
    """
    try:
        out = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _json_dumps(value)
    return _json_dumps(value) if b"null" in out else out.decode()


def loads(text: str | bytes) -> Any:
    """Parse stored JSON text: orjson, or the json module for ``NaN`` and ``Infinity``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def resource_hash(resource: Resource) -> str:
    """A stable digest of a resource and scope, the key under which it is deduplicated."""
    doc = [
        resource.service_name,
        resource.attributes,
        resource.scope_name,
        resource.scope_version,
        resource.scope_attributes,
    ]
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def resource_row(resource: Resource, digest: str) -> dict[str, Any]:
    """The ``resources`` row for a resource."""
    return {
        "hash": digest,
        "service_name": resource.service_name,
        "attributes": dumps(resource.attributes),
        "scope_name": resource.scope_name,
        "scope_version": resource.scope_version,
        "scope_attributes": dumps(resource.scope_attributes),
    }


def resource_from_row(row: Any) -> Resource:
    """Rebuild a Resource from a ``resources`` row."""
    return Resource(
        service_name=row.service_name,
        attributes=loads(row.attributes),
        scope_name=row.scope_name,
        scope_version=row.scope_version,
        scope_attributes=loads(row.scope_attributes),
    )


SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "name",
    "kind",
    "start_ns",
    "duration_ns",
    "status_code",
    "status_message",
    "resource_id",
    "attributes",
    "events",
    "links",
    "extra",
)
"""Column order of :func:`span_values`."""


def encode_attributes(attributes: dict[str, Any], key_ids: dict[str, int]) -> str:
    """Span attributes as a flat JSON array ``[key id, value, key id, value, ...]``.

    Keys repeat on every span, so they are stored once, in ``attribute_keys``.
    """
    flat: list[Any] = []
    for key, value in attributes.items():
        flat.append(key_ids[key])
        flat.append(value)
    return dumps(flat)


def decode_attributes(text: str | None, key_names: dict[int, str]) -> dict[str, Any]:
    """The attributes of a ``spans`` row (a flat array of key ids and values, or an object)."""
    if not text:
        return {}
    doc = loads(text)
    if isinstance(doc, dict):  # rows written before keys were deduplicated
        return doc
    return {key_names[doc[i]]: doc[i + 1] for i in range(0, len(doc), 2)}


def span_values(span: Span, resource_id: int, key_ids: dict[str, int]) -> tuple:
    """The ``spans`` row for a span as a tuple in SPAN_COLUMNS order; empty parts are NULL."""
    extra = None
    if (
        span.trace_state
        or span.flags
        or span.dropped_attributes_count
        or span.dropped_events_count
        or span.dropped_links_count
    ):
        extra = dumps(
            {
                "ts": span.trace_state,
                "f": span.flags,
                "da": span.dropped_attributes_count,
                "de": span.dropped_events_count,
                "dl": span.dropped_links_count,
            }
        )
    return (
        bytes.fromhex(span.trace_id),
        bytes.fromhex(span.span_id),
        bytes.fromhex(span.parent_span_id) if span.parent_span_id else None,
        span.resource.service_name,
        span.name,
        span.kind,
        span.start_ns,
        span.end_ns - span.start_ns,
        span.status_code,
        span.status_message or None,
        resource_id,
        encode_attributes(span.attributes, key_ids) if span.attributes else None,
        dumps([[e.time_ns, e.name, e.attributes, e.dropped_attributes_count] for e in span.events])
        if span.events
        else None,
        dumps([[lk.trace_id, lk.span_id, lk.attributes, lk.trace_state] for lk in span.links]) if span.links else None,
        extra,
    )


def span_from_row(row: Any, resource: Resource, attributes: dict[str, Any]) -> Span:
    """Rebuild a Span from a ``spans`` row, its resource and its decoded attributes."""
    extra = loads(row.extra) if row.extra else {}
    return Span(
        trace_id=row.trace_id.hex(),
        span_id=row.span_id.hex(),
        parent_span_id=row.parent_span_id.hex() if row.parent_span_id else "",
        name=row.name,
        kind=row.kind,
        start_ns=row.start_ns,
        end_ns=row.start_ns + row.duration_ns,
        resource=resource,
        attributes=attributes,
        events=tuple(SpanEvent(t, n, a, d) for t, n, a, d in loads(row.events)) if row.events else (),
        links=tuple(SpanLink(t, s, a, ts) for t, s, a, ts in loads(row.links)) if row.links else (),
        status_code=row.status_code,
        status_message=row.status_message or "",
        trace_state=extra.get("ts", ""),
        flags=extra.get("f", 0),
        dropped_attributes_count=extra.get("da", 0),
        dropped_events_count=extra.get("de", 0),
        dropped_links_count=extra.get("dl", 0),
    )


def tag_text(value: Any) -> str | None:
    """The text a tag search compares against, or None for values that are not indexed.

    Scalars are indexed as they read in a query string: ``true``/``false`` for booleans,
    decimal for numbers. Arrays, maps, bytes and long strings are not indexed.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if len(value) <= MAX_INDEXED_VALUE_LENGTH else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer() or abs(value) >= 2**53:
            return repr(value)
        return str(int(value))
    return None
