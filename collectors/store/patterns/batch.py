"""A batch's pattern rows: computed from its new spans before the write lock is taken,
added to the pattern tables inside :meth:`SpanStore.write_spans`' transaction, and pruned
with the traces they came from. Each noun module collects and writes its own part.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import KIND_CONSUMER, KIND_SERVER, Span
from collectors.store.database import Database
from collectors.store.patterns.breakers import collect_breaker_call, collect_transitions, write_breaker_calls
from collectors.store.patterns.conventions import BUCKET_NS, CB_NAME, SAGA_ID, bucket_of
from collectors.store.patterns.discovery import collect_failovers
from collectors.store.patterns.sagas import collect_saga, write_sagas
from collectors.store.patterns.traffic import collect_entry, write_entry_stats
from collectors.store.schema import (
    breaker_calls,
    breaker_transitions,
    edge_stats,
    failovers,
    instance_stats,
    operation_stats,
    saga_steps,
    sagas,
)


@dataclass(slots=True)
class PatternRows:
    """The pattern-view rows of a batch, computed before the write lock is taken."""

    operations: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    instances: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    calls: dict[tuple[str, str, int], list[Any]] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    failovers: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    sagas: dict[str, dict[str, Any]] = field(default_factory=dict)


def pattern_rows(new: Iterable[Span]) -> PatternRows:
    """Operation and instance stats, breaker, fail-over and saga rows of new spans (no database)."""
    out = PatternRows()
    ops, inst, calls = out.operations, out.instances, out.calls
    for s in new:
        attrs = s.attributes
        bucket = s.start_ns - s.start_ns % BUCKET_NS
        if s.kind in (KIND_SERVER, KIND_CONSUMER) or not s.parent_span_id:
            collect_entry(s, bucket, ops, inst)
        if CB_NAME in attrs:
            collect_breaker_call(s, bucket, calls)
        if s.events:
            collect_transitions(s, out.transitions)
            collect_failovers(s, out.failovers)
        if SAGA_ID in attrs:
            collect_saga(s, out.steps, out.sagas)
    return out


def write_pattern_rows(database: Database, conn: Connection, rows: PatternRows) -> None:
    """Add a batch's :class:`PatternRows` to the pattern tables (in the batch's transaction)."""
    write_entry_stats(conn, rows.operations, rows.instances)
    if rows.calls:
        write_breaker_calls(database, conn, rows.calls)
    if rows.transitions:
        conn.execute(database.insert(breaker_transitions).on_conflict_do_nothing(), rows.transitions)
    if rows.failovers:
        conn.execute(database.insert(failovers).on_conflict_do_nothing(), rows.failovers)
    if rows.steps:
        conn.execute(database.insert(saga_steps).on_conflict_do_nothing(), rows.steps)
    if rows.sagas:
        write_sagas(database, conn, list(rows.sagas.values()))


def drop_stale_rows(conn: Connection, oldest_ns: int | None) -> None:
    """Delete pattern rows older than the oldest stored trace (all of them when None)."""
    tables_by_time = [
        (edge_stats, edge_stats.c.bucket_ns),
        (operation_stats, operation_stats.c.bucket_ns),
        (instance_stats, instance_stats.c.bucket_ns),
        (breaker_calls, breaker_calls.c.bucket_ns),
        (breaker_transitions, breaker_transitions.c.time_ns),
        (failovers, failovers.c.time_ns),
        (sagas, sagas.c.end_ns),
        (saga_steps, saga_steps.c.end_ns),
    ]
    for table, column in tables_by_time:
        if oldest_ns is None:
            conn.execute(sa.delete(table))
        else:
            conn.execute(sa.delete(table).where(column < bucket_of(oldest_ns)))
