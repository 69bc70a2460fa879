"""Per-trace summary rows and service-index rows of a batch; no database here.

A trace's summary (root, start, end, span and error counts, services, and why it failed)
is what listing and searching traces read instead of its spans. A batch brings a partial
summary for each of its traces, which the writer's upsert merges with the stored one
(SUMMARY_SETS).

Why a trace failed is the reason of its deepest error span (the likely cause, where the
failure began): the error span with the most ancestors among the trace's known spans, the
later one of two as deep. The writer judges it again with each batch of the trace, over
every span stored and new (:func:`deepest_errors`), since a batch may bring ancestors
that make an earlier error deeper.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from collectors.model import STATUS_ERROR, Span, SpanEvent
from collectors.store import rows as _rows
from collectors.store.patterns.conventions import http_status

SUMMARY_COLUMNS = (
    "trace_id",
    "root_span_id",
    "root_service",
    "root_name",
    "start_ns",
    "end_ns",
    "span_count",
    "error_count",
    "services",
    "received_ns",
    "failure_span_id",
    "failure_service",
    "failure_reason",
)
"""Column order of the rows :func:`summary_rows` returns."""
MAX_REASON = 300
"""Characters of a failure reason kept in the summary."""
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"

# The earliest known span stands in for the root until the real root arrives.
_TAKE_NEW_ROOT = "NEW.root_span_id IS NOT NULL OR (OLD.root_span_id IS NULL AND NEW.start_ns < OLD.start_ns)"
SUMMARY_SETS = (
    ("root_span_id", "COALESCE(NEW.root_span_id, OLD.root_span_id)"),
    ("root_service", f"CASE WHEN {_TAKE_NEW_ROOT} THEN NEW.root_service ELSE OLD.root_service END"),
    ("root_name", f"CASE WHEN {_TAKE_NEW_ROOT} THEN NEW.root_name ELSE OLD.root_name END"),
    ("start_ns", "LEAST(OLD.start_ns, NEW.start_ns)"),
    ("end_ns", "GREATEST(OLD.end_ns, NEW.end_ns)"),
    ("span_count", "OLD.span_count + NEW.span_count"),
    ("error_count", "OLD.error_count + NEW.error_count"),
    ("services", "NEW.services"),
    ("failure_span_id", "COALESCE(NEW.failure_span_id, OLD.failure_span_id)"),
    ("failure_service", "CASE WHEN NEW.failure_span_id IS NULL THEN OLD.failure_service ELSE NEW.failure_service END"),
    ("failure_reason", "CASE WHEN NEW.failure_span_id IS NULL THEN OLD.failure_reason ELSE NEW.failure_reason END"),
)
"""How a stored summary takes in a batch's (see :func:`collectors.store.bulk.upsert`);
``services`` is merged beforehand, by :func:`with_stored_services`."""


def summary_rows(new: list[Span], received_ns: int) -> list[tuple]:
    """The batch's summary rows (SUMMARY_COLUMNS order)."""
    per_trace: dict[str, list[Span]] = defaultdict(list)
    for s in new:
        per_trace[s.trace_id].append(s)
    summaries = []
    for trace_id, group in per_trace.items():
        key = bytes.fromhex(trace_id)
        root = None
        first = group[0]
        end = first.end_ns
        errors = 0
        for s in group:
            if not s.parent_span_id and root is None:
                root = s
            if s.start_ns < first.start_ns:
                first = s
            if s.end_ns > end:
                end = s.end_ns
            errors += s.status_code == STATUS_ERROR
        stand_in = root or first
        services = sorted({s.service for s in group})
        summaries.append(
            (
                key,
                bytes.fromhex(root.span_id) if root else None,
                stand_in.service,
                stand_in.name,
                first.start_ns,
                end,
                len(group),
                errors,
                _rows.dumps(services),
                received_ns,
                None,
                None,
                None,
            )
        )
    return summaries


def with_stored_services(row: tuple, existing: dict[bytes, list[str]]) -> tuple:
    """A summary row whose services include those already recorded for its trace."""
    stored = existing.get(row[0])
    if not stored:
        return row
    merged = sorted(set(stored) | set(_rows.loads(row[8])))
    return (*row[:8], _rows.dumps(merged), *row[9:])


class KnownSpan(Protocol):
    """What judging a trace's failure reads of a span, stored or new."""

    trace_id: str
    span_id: str
    parent_span_id: str
    status_code: int
    start_ns: int


def deepest_errors(trace_ids: set[str], known: Mapping[tuple[str, str], KnownSpan]) -> dict[str, KnownSpan]:
    """For each of ``trace_ids`` with an error span among ``known`` (every span of the trace
    stored or new, by trace and span id), its deepest error span: the most ancestors
    among the known spans, then the later start."""
    best: dict[str, tuple[tuple[int, int], KnownSpan]] = {}
    for (trace_id, _), x in known.items():
        if x.status_code != STATUS_ERROR or trace_id not in trace_ids:
            continue
        depth, parent, seen = 0, x.parent_span_id, set()
        while parent and parent not in seen and (trace_id, parent) in known:
            seen.add(parent)
            depth += 1
            parent = known[(trace_id, parent)].parent_span_id
        rank = (depth, x.start_ns)
        if trace_id not in best or rank > best[trace_id][0]:
            best[trace_id] = (rank, x)
    return {t: x for t, (_, x) in best.items()}


def failure_reason(name: str, status_message: str, events: Iterable[SpanEvent], attributes: dict[str, Any]) -> str:
    """What went wrong in an error span, in a line: its status message, else its exception's
    type and message, else its HTTP status, else that it failed with no message."""
    if status_message:
        return status_message[:MAX_REASON]
    for event in events:
        if event.name == EXCEPTION_EVENT:
            kind = str(event.attributes.get(EXCEPTION_TYPE) or "")
            message = str(event.attributes.get(EXCEPTION_MESSAGE) or "")
            text = ": ".join(p for p in (kind, message) if p)
            if text:
                return text[:MAX_REASON]
    status = http_status(attributes)
    if status is not None:
        return f"HTTP {status}"
    return f"{name[:MAX_REASON - 40]}: status ERROR, with no message"


def with_failure(row: tuple, span_id: bytes, service: str, reason: str) -> tuple:
    """A summary row (SUMMARY_COLUMNS order) that records its trace's failure."""
    return (*row[:10], span_id, service, reason)
