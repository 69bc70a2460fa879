"""Trace fragments: the spans of one trace that arrived in one batch, encoded as one value.

A fragment is stored as one row (``span_fragments``), compressed (see
``collectors/store/compression.py``). This module is the encoding only; no database here.

The encoding is columnar JSON: one list per field (span ids, parents, names, start
offsets, durations, ...) rather than one object per span, so that a column's repeating
values sit together and compress well, and so that a reader that wants a span's outline
(pairing, the comparison of traces) takes a few columns without building the rest.

* Parents inside the fragment are stored as the index of the parent span (an id costs 16
  characters, an index one or two); parents outside it as their hex id; no parent as -1.
* Attributes: each span's keys in order (its *shape*, as attribute-key ids, shared by all
  spans with the same keys) and, per key, the column of its values in span order. A
  span's attributes come back in the order they were sent, with ``None`` values kept.
* Rare fields (a status message, events, links, trace state, flags, dropped counts) are
  listed sparsely, by span index.

Values go through :func:`collectors.store.rows.dumps`, which keeps non-finite floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from collectors.model import Resource, Span, SpanEvent, SpanLink, SpanOutline
from collectors.store.rows import dumps, loads

FORMAT = 1
"""The version of the encoding, the first element of every encoded fragment."""

# Positions in the encoded list.
_FORMAT, _BASE, _IDS, _PARENTS, _SERVICES, _NAMES, _KINDS, _STARTS, _DURATIONS = range(9)
_STATUS, _RESOURCES, _SHAPES, _SHAPE_OF, _VALUES, _SPARSE = range(9, 15)

# Codes of the sparse fields.
_MESSAGE, _EVENTS, _LINKS, _EXTRA = "m", "e", "l", "x"


def encode(spans: Sequence[Span], resource_ids: Mapping[int, int], key_ids: Mapping[str, int]) -> bytes:
    """The encoded fragment of ``spans`` (all of one trace). ``resource_ids`` maps the
    ``id()`` of each span's Resource to its row id, ``key_ids`` attribute keys to theirs."""
    return encode_with_columns(spans, resource_ids, key_ids)[0]


def encode_with_columns(
    spans: Sequence[Span], resource_ids: Mapping[int, int], key_ids: Mapping[str, int]
) -> tuple[bytes, dict[str, list[Any]]]:
    """The encoded fragment, and the values of each attribute key over its spans (the
    tag index hashes those, and so reads every attribute once for both)."""
    base = min(s.start_ns for s in spans)
    index = {s.span_id: i for i, s in enumerate(spans)}
    shapes: dict[tuple[str, ...], int] = {}
    shape_of: list[int] = []
    columns: dict[str, list[Any]] = {}
    sparse: list[list[Any]] = []
    for i, s in enumerate(spans):
        attributes = s.attributes
        keys = tuple(attributes)
        shape = shapes.get(keys)
        if shape is None:
            shape = shapes[keys] = len(shapes)
        shape_of.append(shape)
        for key, value in attributes.items():
            column = columns.get(key)
            if column is None:
                columns[key] = [value]
            else:
                column.append(value)
        if s.status_message:
            sparse.append([i, _MESSAGE, s.status_message])
        if s.events:
            events = [[e.time_ns, e.name, e.attributes, e.dropped_attributes_count] for e in s.events]
            sparse.append([i, _EVENTS, events])
        if s.links:
            sparse.append([i, _LINKS, [[lk.trace_id, lk.span_id, lk.attributes, lk.trace_state] for lk in s.links]])
        if s.trace_state or s.flags or s.dropped_attributes_count or s.dropped_events_count or s.dropped_links_count:
            extra = [s.trace_state, s.flags, s.dropped_attributes_count, s.dropped_events_count, s.dropped_links_count]
            sparse.append([i, _EXTRA, extra])
    values: list[Any] = []
    for key, column in columns.items():
        values.append(key_ids[key])
        values.append(column)
    doc = [
        FORMAT,
        base,
        [s.span_id for s in spans],
        [index.get(s.parent_span_id, s.parent_span_id) if s.parent_span_id else -1 for s in spans],
        [s.resource.service_name for s in spans],
        [s.name for s in spans],
        [s.kind for s in spans],
        [s.start_ns - base for s in spans],
        [s.end_ns - s.start_ns for s in spans],
        [s.status_code for s in spans],
        [resource_ids[id(s.resource)] for s in spans],
        [[key_ids[k] for k in keys] for keys in shapes],
        shape_of,
        values,
        sparse,
    ]
    return dumps(doc).encode(), columns


class Fragment:
    """An encoded fragment, parsed once; its spans are built on demand."""

    __slots__ = ("trace_id", "_doc")

    def __init__(self, trace_id: str, raw: bytes | str) -> None:
        self.trace_id = trace_id
        doc = loads(raw)
        if not isinstance(doc, list) or not doc or doc[_FORMAT] != FORMAT:
            raise ValueError(f"unknown trace fragment encoding {doc[0] if isinstance(doc, list) and doc else doc!r}")
        self._doc = doc

    def __len__(self) -> int:
        return len(self._doc[_IDS])

    @property
    def span_ids(self) -> list[str]:
        """The ids of the fragment's spans, in stored order."""
        return self._doc[_IDS]

    @property
    def resource_ids(self) -> set[int]:
        """The row ids of the resources the fragment's spans refer to."""
        return set(self._doc[_RESOURCES])

    @property
    def key_ids(self) -> set[int]:
        """The attribute-key ids the fragment's spans use."""
        return {k for shape in self._doc[_SHAPES] for k in shape}

    def parents(self) -> list[str]:
        """The parent span id of each span ("" for a root)."""
        ids = self._doc[_IDS]
        return [ids[p] if type(p) is int and p >= 0 else (p if type(p) is str else "") for p in self._doc[_PARENTS]]

    def outlines(self) -> list[SpanOutline]:
        """Each span's place and timing, without attributes, events or links."""
        d = self._doc
        base = d[_BASE]
        return [
            SpanOutline(span_id, parent, service, name, base + start, base + start + duration, status)
            for span_id, parent, service, name, start, duration, status in zip(
                d[_IDS], self.parents(), d[_SERVICES], d[_NAMES], d[_STARTS], d[_DURATIONS], d[_STATUS], strict=True
            )
        ]

    def columns(self) -> dict[str, list[Any]]:
        """The plain columns: ``span_id``, ``parent_span_id``, ``service``, ``name``,
        ``kind``, ``start_ns``, ``duration_ns``, ``status_code``, ``resource_id``."""
        d = self._doc
        base = d[_BASE]
        return {
            "span_id": d[_IDS],
            "parent_span_id": self.parents(),
            "service": d[_SERVICES],
            "name": d[_NAMES],
            "kind": d[_KINDS],
            "start_ns": [base + s for s in d[_STARTS]],
            "duration_ns": d[_DURATIONS],
            "status_code": d[_STATUS],
            "resource_id": d[_RESOURCES],
        }

    def attributes(self, key_names: Mapping[int, str]) -> list[dict[str, Any]]:
        """Each span's attributes, keys in the order they were sent.

        Raises KeyError for a key id missing from ``key_names``."""
        d = self._doc
        flat = d[_VALUES]
        columns = {flat[i]: iter(flat[i + 1]) for i in range(0, len(flat), 2)}
        shapes = [[(key_names[k], columns[k]) for k in shape] for shape in d[_SHAPES]]
        return [{name: next(values) for name, values in shapes[s]} for s in d[_SHAPE_OF]]

    def column(self, key_id: int) -> list[Any]:
        """Each span's value of one attribute key (None where a span has not got it)."""
        d = self._doc
        flat = d[_VALUES]
        values: list[Any] = []
        for i in range(0, len(flat), 2):
            if flat[i] == key_id:
                values = flat[i + 1]
                break
        if not values:
            return [None] * len(d[_IDS])
        having = [key_id in shape for shape in d[_SHAPES]]
        found = iter(values)
        return [next(found) if having[s] else None for s in d[_SHAPE_OF]]

    def spans(self, key_names: Mapping[int, str], resources: Mapping[int, Resource]) -> list[Span]:
        """The fragment's spans, whole."""
        d = self._doc
        trace_id = self.trace_id
        base = d[_BASE]
        rare: dict[int, dict[str, Any]] = {}
        for i, code, value in d[_SPARSE]:
            rare.setdefault(i, {})[code] = value
        out = []
        for i, (span_id, parent, name, kind, start, duration, status, resource_id, attributes) in enumerate(
            zip(
                d[_IDS],
                self.parents(),
                d[_NAMES],
                d[_KINDS],
                d[_STARTS],
                d[_DURATIONS],
                d[_STATUS],
                d[_RESOURCES],
                self.attributes(key_names),
                strict=True,
            )
        ):
            span = Span(
                trace_id,
                span_id,
                parent,
                name,
                kind,
                base + start,
                base + start + duration,
                resources[resource_id],
                attributes,
                status_code=status,
            )
            extra = rare.get(i)
            if extra:
                _add_rare(span, extra)
            out.append(span)
        return out


def _add_rare(span: Span, rare: dict[str, Any]) -> None:
    if _MESSAGE in rare:
        span.status_message = rare[_MESSAGE]
    if _EVENTS in rare:
        span.events = tuple(SpanEvent(t, n, a, dr) for t, n, a, dr in rare[_EVENTS])
    if _LINKS in rare:
        span.links = tuple(SpanLink(t, s, a, ts) for t, s, a, ts in rare[_LINKS])
    if _EXTRA in rare:
        trace_state, flags, dropped_attributes, dropped_events, dropped_links = rare[_EXTRA]
        span.trace_state, span.flags = trace_state, flags
        span.dropped_attributes_count = dropped_attributes
        span.dropped_events_count, span.dropped_links_count = dropped_events, dropped_links
