"""Retention for the span store: whole traces deleted by age of receipt and by count."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from collectors.store import tag_index
from collectors.store.contracts import PruneResult
from collectors.store.database import Database
from collectors.store.patterns.batch import drop_stale_rows
from collectors.store.schema import (
    span_fragments,
    trace_summaries,
    unpaired_consumers,
)


class Retention:
    """Deletes whole traces, and then the index and aggregate rows older than every trace."""

    def __init__(self, database: Database, count_spans: Callable[[], int]) -> None:
        self._database = database
        self._count_spans = count_spans

    def prune(self, *, older_than_ns: int | None = None, max_spans: int | None = None, chunk: int = 200) -> PruneResult:
        """Delete whole traces first received before ``older_than_ns``, then the oldest
        received traces until at most ``max_spans`` spans remain.

        Works in small transactions of ``chunk`` traces so ingest is never blocked for
        long. Index rows of deleted traces are removed lazily (searches ignore them).
        """
        removed_traces = removed_spans = 0
        excess = 0
        if max_spans is not None:
            excess = max(0, self._count_spans() - max_spans)
        while True:
            stmt = sa.select(trace_summaries.c.trace_id, trace_summaries.c.span_count, trace_summaries.c.received_ns)
            stmt = stmt.order_by(trace_summaries.c.received_ns, trace_summaries.c.trace_id).limit(chunk)
            with self._database.connect() as conn:
                candidates = conn.execute(stmt).all()
            victims = []
            for r in candidates:
                expired = older_than_ns is not None and r.received_ns < older_than_ns
                if not expired and excess <= 0:
                    break
                victims.append(r.trace_id)
                excess -= r.span_count
                removed_spans += r.span_count
            if not victims:
                break
            with self._database.write() as conn:
                conn.execute(sa.delete(span_fragments).where(span_fragments.c.trace_id.in_(victims)))
                conn.execute(sa.delete(trace_summaries).where(trace_summaries.c.trace_id.in_(victims)))
            removed_traces += len(victims)
            if len(victims) < len(candidates):
                break
        if removed_traces:
            self._drop_stale_index_rows()
        return PruneResult(removed_traces, removed_spans)

    def _drop_stale_index_rows(self) -> None:
        """Delete index and aggregate rows older than the oldest trace still stored."""
        with self._database.connect() as conn:
            oldest = conn.execute(sa.select(sa.func.min(trace_summaries.c.start_ns))).scalar()
        with self._database.write() as conn:
            tag_index.drop_before(conn, oldest)
            drop_stale_rows(conn, oldest)
            if oldest is None:
                conn.execute(sa.delete(unpaired_consumers))
                return
            conn.execute(sa.delete(unpaired_consumers).where(unpaired_consumers.c.start_ns < oldest))
