"""Per-trace summary rows and service-index rows of a batch; no database here.

A trace's summary (root, start, end, span and error counts, services) is what listing and
searching traces read instead of its spans. A batch brings a partial summary for each of
its traces, which the writer's upsert merges with the stored one (SUMMARY_SETS).
"""

from __future__ import annotations

from collections import defaultdict

from collectors.model import STATUS_ERROR, Span
from collectors.store import rows as _rows

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
)
"""Column order of the rows :func:`summary_rows` returns."""

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
)
"""How a stored summary takes in a batch's (see :func:`collectors.store.bulk.upsert`);
``services`` is merged beforehand, by :func:`with_stored_services`."""


def summary_rows(new: list[Span], received_ns: int) -> tuple[list[tuple], list[tuple[str, int, bytes]]]:
    """The batch's summary rows (SUMMARY_COLUMNS order) and ``trace_services`` rows
    (service, first start of the service in the trace, trace id)."""
    per_trace: dict[str, list[Span]] = defaultdict(list)
    for s in new:
        per_trace[s.trace_id].append(s)
    summaries = []
    first_start: dict[tuple[str, bytes], int] = {}
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
            k = (s.service, key)
            if s.start_ns < first_start.get(k, 1 << 63):
                first_start[k] = s.start_ns
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
            )
        )
    return summaries, [(service, start, trace) for (service, trace), start in first_start.items()]


def with_stored_services(row: tuple, existing: dict[bytes, list[str]]) -> tuple:
    """A summary row whose services include those already recorded for its trace."""
    stored = existing.get(row[0])
    if not stored:
        return row
    merged = sorted(set(stored) | set(_rows.loads(row[8])))
    return (*row[:8], _rows.dumps(merged), row[9])
