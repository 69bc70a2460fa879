"""Service-to-service calls found by pairing spans: a parent span and its child in another
service (synchronous, or through a producer and a consumer span), and a consumer with the
producer span it links to (asynchronous). No database here: the writer hands in the new
spans and the stored spans of their traces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from collectors.model import KIND_CLIENT, STATUS_ERROR, Span
from collectors.store.fragments import Fragment
from collectors.store.patterns.conventions import (
    DISCOVERY_SERVICE,
    HTTP_STATUS_KEYS,
    MODE_ASYNC,
    http_status,
    judge_call,
)
from collectors.store.patterns.traffic import EdgeAccumulator, edge_mode


@dataclass(slots=True)
class StoredSpan:
    """A stored span, as much of it as pairing needs (a :class:`Span` has every field)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    kind: int
    status_code: int
    start_ns: int
    duration_ns: int
    http_status: int | None = None


def stored_spans(fragments: Iterable[Fragment], key_names: Mapping[int, str]) -> list[StoredSpan]:
    """The StoredSpans of stored fragments: their columns and HTTP status only (no
    attributes are built); ``key_names`` names the fragments' attribute keys."""
    out = []
    for f in fragments:
        c = f.columns()
        trace_id = f.trace_id
        statuses: list[int | None] = [None] * len(f)
        for key_id in f.key_ids:
            name = key_names.get(key_id)
            if name in HTTP_STATUS_KEYS:
                for i, value in enumerate(f.column(key_id)):
                    if statuses[i] is None and value is not None:
                        statuses[i] = http_status({name: value})
        out.extend(
            StoredSpan(trace_id, span_id, parent, service, kind, status, start, duration, http)
            for span_id, parent, service, kind, status, start, duration, http in zip(
                c["span_id"],
                c["parent_span_id"],
                c["service"],
                c["kind"],
                c["status_code"],
                c["start_ns"],
                c["duration_ns"],
                statuses,
                strict=True,
            )
        )
    return out


@dataclass(slots=True)
class Calls:
    """The calls a batch adds, as edge-stats rows (per minute, with mode and histogram)."""

    stats: EdgeAccumulator = field(default_factory=EdgeAccumulator)

    def add(
        self,
        parent: str,
        child: str,
        mode: int,
        start_ns: int,
        duration_ns: int,
        failed: bool,
        trace_id: str,
        throttled: bool = False,
    ) -> None:
        """Count one call from ``parent`` to ``child`` starting at ``start_ns`` in trace ``trace_id``."""
        self.stats.add(parent, child, mode, start_ns, duration_ns, failed, trace_id, throttled)

    def add_async(
        self, producer: str, consumer: str, start_ns: int, duration_ns: int, failed: bool, trace_id: str
    ) -> None:
        """A producer -> consumer call through a link (``trace_id``: the consumer's trace);
        none between spans of one service."""
        if producer != consumer:
            self.add(producer, consumer, MODE_ASYNC, start_ns, duration_ns, failed, trace_id)


def pair_calls(new: list[Span], old: list[StoredSpan]) -> tuple[Calls, dict[tuple[str, str], StoredSpan | Span]]:
    """Calls between parent and child spans of the new spans and the stored ones (``old``,
    of the same traces), each counted once: when the later of the two arrives. Also
    counts the peers client and producer spans name. Returns the calls and every span
    by (trace id, span id)."""
    by_id: dict[tuple[str, str], StoredSpan | Span] = {(x.trace_id, x.span_id): x for x in old}
    new_by_id = {(x.trace_id, x.span_id): x for x in new}
    by_id.update(new_by_id)
    new_keys = new_by_id.keys()
    calls = Calls()
    calls.stats.add_peers(new)
    for child in by_id.values():
        if not child.parent_span_id:
            continue
        parent = by_id.get((child.trace_id, child.parent_span_id))
        if parent is None or parent.service == child.service:
            continue
        if (child.trace_id, child.span_id) not in new_keys and (parent.trace_id, parent.span_id) not in new_keys:
            continue  # counted when the later of the two arrived
        client_side = parent.kind == KIND_CLIENT
        duration = parent.duration_ns if client_side else child.duration_ns
        failed, throttled = judge_pair(parent, child)
        calls.add(
            parent.service,
            child.service,
            edge_mode(parent.kind, child.kind, _is_lookup(parent) or _is_lookup(child)),
            child.start_ns,
            duration,
            failed,
            child.trace_id,
            throttled,
        )
    return calls, by_id


def judge_pair(parent: StoredSpan | Span, child: StoredSpan | Span) -> tuple[bool, bool]:
    """(failed, throttled) of the call from ``parent`` to ``child``, judged as the callee's
    own span is (:func:`judge_call`), so a node's errors and its incoming edges' agree.

    The callee's span failing fails the call; the caller's client span failing fails it
    too when the callee gave no 4xx answer (a timeout, a refused connection, a 5xx). The
    HTTP status comes from the callee's span, else the caller's: at least one of the two
    is new in the batch, with its attributes, and a stored span brings its HTTP status.
    """
    status = _http_status_of(child)
    if status is None:
        status = _http_status_of(parent)
    child_failed, throttled = judge_call(child.status_code == STATUS_ERROR, status)
    if throttled:
        return False, True
    caller_failed = False
    if parent.kind == KIND_CLIENT:
        caller_failed = judge_call(parent.status_code == STATUS_ERROR, status, caller=True)[0]
    return child_failed or caller_failed, False


def _is_lookup(x: StoredSpan | Span) -> bool:
    """Whether the span is one of a registry lookup's (it names the service looked up).
    Of a pair, one span at least is new with its attributes, and both sides of a lookup
    carry the attribute."""
    return isinstance(x, Span) and DISCOVERY_SERVICE in x.attributes


def _http_status_of(x: StoredSpan | Span) -> int | None:
    return http_status(x.attributes) if isinstance(x, Span) else x.http_status
