"""The stored spans of the traces a process wrote last, so that its next batch of the same
trace need not read them back.

A collector fleet delivers a trace in parts, seconds apart: each part's batch needs the
spans already stored for its trace (to skip re-sent spans and to pair calls across
batches), which means reading and decoding the trace's fragments. A process that wrote
the earlier part keeps what pairing needs of it in memory instead, for a few thousand
traces. An entry holds only while nobody else has written to its trace: it is used when
the trace's stored summary still has the span count, start and end this process left it
with (every write changes the count), and is otherwise read again from the database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from collectors.model import Span
from collectors.store.pairing import StoredSpan
from collectors.store.patterns.conventions import http_status

CAPACITY = 4096
"""Traces kept."""
MAX_SPANS = 1000
"""Traces with more spans are not kept (one huge trace would take the room of many)."""

Fingerprint = tuple[int, int, int]
"""A trace summary's span count, start and end."""


class RecentTraces:
    """A bounded map of trace id -> (fingerprint, stored spans); safe to share between threads."""

    def __init__(self, capacity: int = CAPACITY, max_spans: int = MAX_SPANS) -> None:
        self._capacity = capacity
        self._max_spans = max_spans
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[Fingerprint, list[StoredSpan]]] = OrderedDict()

    def get(self, trace_key: bytes, fingerprint: Fingerprint) -> list[StoredSpan] | None:
        """The trace's stored spans if this process wrote it last, else None."""
        with self._lock:
            entry = self._entries.get(trace_key)
            if entry is None or entry[0] != fingerprint:
                return None
            self._entries.move_to_end(trace_key)
            return entry[1]

    def remember(self, updates: Iterable[tuple[bytes, Fingerprint, list[StoredSpan]]]) -> None:
        """Keep what a committed batch left stored for its traces."""
        with self._lock:
            for trace_key, fingerprint, spans in updates:
                if len(spans) > self._max_spans:
                    self._entries.pop(trace_key, None)
                    continue
                self._entries[trace_key] = (fingerprint, spans)
                self._entries.move_to_end(trace_key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


def stored_span_of(span: Span) -> StoredSpan:
    """What pairing needs of a span just stored."""
    return StoredSpan(
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.resource.service_name,
        span.kind,
        span.status_code,
        span.start_ns,
        span.end_ns - span.start_ns,
        http_status(span.attributes),
    )
