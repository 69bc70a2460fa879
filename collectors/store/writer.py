"""The write path of the span store: one transaction per batch.

:meth:`Writer.write_spans` stores a batch and, in the same transaction, brings the
per-trace summaries, the service index, the tag index, the operation list, the per-edge
aggregates and the pattern tables up to date. It returns after the commit.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import KIND_CONSUMER, KIND_PRODUCER, STATUS_ERROR, Span, SpanLink
from collectors.store import rows as _rows
from collectors.store import tag_index
from collectors.store.bulk import insert_ignoring_duplicates, lock_traces, select_in, upsert
from collectors.store.catalog import Catalog
from collectors.store.contracts import StoreError, WriteResult, first_line
from collectors.store.database import Database
from collectors.store.span_fragments import COLUMNS as FRAGMENT_COLUMNS
from collectors.store.span_fragments import SpanFragments
from collectors.store.fragments import Fragment
from collectors.store.pairing import Calls, StoredSpan, pair_calls, stored_spans
from collectors.store.patterns.batch import PatternRows, pattern_rows, write_pattern_rows
from collectors.store.patterns.traffic import write_edge_stats
from collectors.store.recent_traces import Fingerprint, RecentTraces, stored_span_of
from collectors.store.schema import (
    operations,
    span_fragments,
    trace_summaries,
    unpaired_consumers,
)
from collectors.store.summaries import (
    SUMMARY_COLUMNS,
    SUMMARY_SETS,
    deepest_errors,
    failure_reason,
    summary_rows,
    with_failure,
    with_stored_services,
)

WRITE_ATTEMPTS = 3
"""Tries of a batch's transaction when PostgreSQL aborts it to break a deadlock or a
serialization conflict (the write path takes its locks in one order, so this is rare)."""
_TRANSIENT = {"40P01", "40001"}


class Writer:
    """Writes batches of spans through the database's write transactions.

    The ids of resources and attribute keys come from the shared :class:`Catalog`; the
    operations already recorded are remembered by this writer, so a batch of known
    operations costs no statement for them.
    """

    def __init__(self, database: Database, catalog: Catalog, fragments: SpanFragments) -> None:
        self._database = database
        self._catalog = catalog
        self._fragments = fragments
        self._known_operations: set[tuple[str, str, int]] = set()
        self.recent = RecentTraces()

    def write_spans(self, batch: Iterable[Span], received_ns: int | None = None) -> WriteResult:
        """Store spans, idempotently on (trace_id, span_id), and return after the commit.

        Spans already stored (an exporter's retry) are skipped and counted as
        duplicates; summaries, indexes and edges count each span once. Raises
        StoreError if the transaction cannot commit, in which case nothing of the
        batch is stored.
        """
        received_ns = received_ns or time.time_ns()
        unique: dict[tuple[str, str], Span] = {}
        for span in batch:
            unique.setdefault((span.trace_id, span.span_id), span)
        if not unique:
            return WriteResult(0, 0)
        offered = len(unique)
        try:
            resource_ids, key_ids = self._catalog.resolve(list(unique.values()))
            # Everything that needs no database (fragment encoding and compression, index
            # entries, aggregates) is done before taking the write lock, so several workers
            # overlap it and the lock is held only for the statements.
            encoding = _Encoding(self._fragments, resource_ids, key_ids)
            rows, tags = encoding.rows(unique.values())
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                prepared = _prepare(list(unique.values()), [], tags, received_ns)
                try:
                    with self._database.write() as conn:
                        new_ops, inserted, recent = self._write_in(
                            conn, dict(unique), rows, encoding, prepared, received_ns
                        )
                    break
                except sa.exc.DBAPIError as err:
                    if attempt == WRITE_ATTEMPTS or getattr(err.orig, "sqlstate", None) not in _TRANSIENT:
                        raise
        except sa.exc.SQLAlchemyError as err:
            raise StoreError(f"could not store the batch: {first_line(err)}") from err
        self._known_operations.update(new_ops)
        self.recent.remember(recent)  # committed: what the next batch of these traces finds
        self._database.start_checkpoints()
        return WriteResult(inserted, offered - inserted)

    def _write_in(
        self,
        conn: Connection,
        unique: dict[tuple[str, str], Span],
        rows: list[tuple],
        encoding: _Encoding,
        prepared: _Prepared,
        received_ns: int,
    ) -> tuple[set[tuple[str, str, int]], int, list[tuple[bytes, Fingerprint, list[StoredSpan]]]]:
        """Write the batch's new spans and what they add; return the operations not known
        before, how many spans were new, and what the batch leaves stored of its traces
        (for :attr:`recent`, once committed)."""
        trace_keys = {bytes.fromhex(t) for t, _ in unique}
        # A consumer's link pairs it with a producer span of another trace: hold that
        # trace too, so the producer's batch and this one see each other's rows.
        linked = {bytes.fromhex(lk.trace_id) for s in unique.values() if s.kind == KIND_CONSUMER for lk in s.links}
        lock_traces(conn, list(trace_keys | linked))
        # Services already recorded per stored trace: which traces exist, and what the
        # summary upsert merges with.
        existing: dict[bytes, list[str]] = {}
        stored_failures: dict[bytes, bytes | None] = {}
        fingerprints: dict[bytes, Fingerprint] = {}
        columns = ("trace_id", "services", "failure_span_id", "span_count", "start_ns", "end_ns")
        for trace_id, services, failure, count, start, end in select_in(
            conn, trace_summaries, columns, "trace_id", list(trace_keys)
        ):
            existing[trace_id] = _rows.loads(services)
            stored_failures[trace_id] = failure
            fingerprints[trace_id] = (count, start, end)
        stored: list[Fragment] = []
        old_spans: list[StoredSpan] = []
        if existing:
            # Some traces have spans stored already: drop spans already stored (a retry),
            # and pair the new spans with the stored ones for edges. This process may have
            # them in memory; the others are read.
            unread = []
            for key in existing:
                known = self.recent.get(key, fingerprints[key])
                if known is None:
                    unread.append(key)
                else:
                    old_spans.extend(known)
            if unread:
                stored = self._fragments.read(conn, unread)
                old_spans.extend(stored_spans(stored, self._fragments.key_names(conn, stored)))
            retried = {(x.trace_id, x.span_id) for x in old_spans} & unique.keys()
            for key in retried:
                del unique[key]
            if not unique:
                return set(), 0, []
            if retried:  # the fragments of the traces concerned hold only the new spans
                rows, tags = encoding.rows(unique.values())
                prepared = _prepare(list(unique.values()), old_spans, tags, received_ns)
            else:  # the same spans: only their edges pair differently with the stored ones
                prepared.calls, prepared.by_id = pair_calls(list(unique.values()), old_spans)
        new = list(unique.values())
        insert_ignoring_duplicates(conn, span_fragments, FRAGMENT_COLUMNS, rows)
        summaries = prepared.summaries
        if existing:
            summaries = [with_stored_services(row, existing) for row in summaries]
        summaries = self._with_failures(conn, summaries, prepared.by_id, stored_failures, stored)
        recent = _left_stored(new, old_spans, fingerprints)
        upsert(conn, trace_summaries, SUMMARY_COLUMNS, ("trace_id",), SUMMARY_SETS, summaries)
        tag_index.write(conn, prepared.tags)
        new_ops = {(s.service, s.name, s.kind) for s in new} - self._known_operations
        if new_ops:
            insert_ignoring_duplicates(conn, operations, ("service", "name", "kind"), sorted(new_ops))
        producers = [s for s in new if s.kind == KIND_PRODUCER]
        if producers:  # before this batch's own consumers are recorded as waiting
            _pair_waiting_consumers(conn, producers, prepared.calls)
        links = [(s, lk) for s in new if s.kind == KIND_CONSUMER for lk in s.links]
        if links:
            self._pair_linked_consumers(conn, links, prepared)
        write_edge_stats(conn, prepared.calls.stats)
        write_pattern_rows(self._database, conn, prepared.patterns)
        return new_ops, len(unique), recent


    def _with_failures(
        self,
        conn: Connection,
        summaries: list[tuple],
        known: dict[tuple[str, str], StoredSpan | Span],
        stored: dict[bytes, bytes | None],
        fragments: list[Fragment],
    ) -> list[tuple]:
        """The summary rows with the reason of each trace's deepest error span, judged over
        its stored and new spans; a row keeps NULLs (the stored reason stands) when that
        span is the one already recorded. A stored span's reason is read back (rare: its
        batch judged another span deeper, or it was stored before reasons were kept)."""
        deepest = deepest_errors({row[0].hex() for row in summaries}, known)
        if not deepest:
            return summaries
        reasons: dict[bytes, tuple[bytes, str, str]] = {}
        wanted: list[tuple[bytes, bytes]] = []
        for trace_id, x in deepest.items():
            key, span_key = bytes.fromhex(trace_id), bytes.fromhex(x.span_id)
            if isinstance(x, Span):
                reasons[key] = (span_key, x.service, failure_reason(x.name, x.status_message, x.events, x.attributes))
            elif stored.get(key) != span_key:
                wanted.append((key, span_key))
        if wanted:
            reasons.update(self._stored_reasons(conn, wanted, fragments))
        return [with_failure(row, *reasons[row[0]]) if row[0] in reasons else row for row in summaries]

    def _stored_reasons(
        self, conn: Connection, wanted: list[tuple[bytes, bytes]], fragments: list[Fragment]
    ) -> dict[bytes, tuple[bytes, str, str]]:
        """The reasons of stored spans, read from the fragments of their traces (those the
        batch has not read already are read now)."""
        keys = {(t.hex(), s.hex()) for t, s in wanted}
        read = {f.trace_id for f in fragments}
        fragments = fragments + self._fragments.read(conn, {t for t, _ in wanted if t.hex() not in read})
        holding = [f for f in fragments if any((f.trace_id, sid) in keys for sid in f.span_ids)]
        out = {}
        for x in self._fragments.spans(conn, holding):
            if (x.trace_id, x.span_id) in keys:
                reason = failure_reason(x.name, x.status_message, x.events, x.attributes)
                out[bytes.fromhex(x.trace_id)] = (bytes.fromhex(x.span_id), x.service, reason)
        return out

    def _pair_linked_consumers(self, conn: Connection, links: list[tuple[Span, SpanLink]], prepared: _Prepared) -> None:
        """Count producer -> consumer calls of new CONSUMER spans that link to their producer.

        Messaging consumers usually start a trace of their own and link to the producing
        span (OpenTelemetry's messaging conventions), so there is no parent to pair with.
        A consumer whose producer has not arrived is recorded in ``unpaired_consumers``;
        the producer's batch pairs it (:func:`_pair_waiting_consumers`).
        """
        found = dict(prepared.by_id)
        wanted = {(lk.trace_id, lk.span_id) for _, lk in links} - set(found)
        if wanted:
            fragments = self._fragments.read(conn, {bytes.fromhex(t) for t, _ in wanted})
            stored = stored_spans(fragments, self._fragments.key_names(conn, fragments))
            found.update(((x.trace_id, x.span_id), x) for x in stored if (x.trace_id, x.span_id) in wanted)
        waiting = []
        for consumer, link in links:
            producer = found.get((link.trace_id, link.span_id))
            duration, failed = consumer.end_ns - consumer.start_ns, consumer.status_code == STATUS_ERROR
            if producer is None:
                waiting.append(
                    (
                        bytes.fromhex(link.span_id),
                        bytes.fromhex(link.trace_id),
                        bytes.fromhex(consumer.trace_id),
                        bytes.fromhex(consumer.span_id),
                        consumer.service,
                        consumer.start_ns,
                        duration,
                        int(failed),
                    )
                )
            elif producer.kind == KIND_PRODUCER:
                prepared.calls.add_async(
                    producer.service, consumer.service, consumer.start_ns, duration, failed, consumer.trace_id
                )
        insert_ignoring_duplicates(conn, unpaired_consumers, _UNPAIRED_COLUMNS, waiting)


class _Encoding:
    """Encodes a batch's spans as fragment rows, one per trace."""

    def __init__(self, fragments: SpanFragments, resource_ids: dict[int, int], key_ids: dict[str, int]) -> None:
        self._fragments = fragments
        self._resource_ids = resource_ids
        self._key_ids = key_ids

    def rows(self, spans: Iterable[Span]) -> tuple[list[tuple], list[tuple[int, bytes, bytes]]]:
        """The fragment rows of the spans (in FRAGMENT_COLUMNS order) and their tag index rows."""
        by_trace: dict[str, list[Span]] = {}
        for s in spans:
            group = by_trace.get(s.trace_id)
            if group is None:
                by_trace[s.trace_id] = [s]
            else:
                group.append(s)
        return self._fragments.rows_for(by_trace, self._resource_ids, self._key_ids)


@dataclass(slots=True)
class _Prepared:
    """What a batch adds besides its span rows, computed without the database."""

    summaries: list[tuple]
    tags: list[tuple[int, bytes, bytes]]
    calls: Calls
    patterns: PatternRows
    by_id: dict[tuple[str, str], StoredSpan | Span]


_UNPAIRED_COLUMNS = (
    "producer_span_id",
    "producer_trace_id",
    "consumer_trace_id",
    "consumer_span_id",
    "service",
    "start_ns",
    "duration_ns",
    "failed",
)


def _prepare(
    new: list[Span], old: list[StoredSpan], tags: list[tuple[int, bytes, bytes]], received_ns: int
) -> _Prepared:
    """Summaries, index entries, calls and pattern rows of the new spans of a batch;
    ``old`` are the stored spans of the batch's traces, for calls across batches, and
    ``tags`` the tag index rows of the batch's fragments."""
    calls, by_id = pair_calls(new, old)
    return _Prepared(summary_rows(new, received_ns), tags, calls, pattern_rows(new), by_id)


def _left_stored(
    new: list[Span], old: list[StoredSpan], fingerprints: dict[bytes, Fingerprint]
) -> list[tuple[bytes, Fingerprint, list[StoredSpan]]]:
    """The batch's traces that come in parts, as they are left stored: their summary's
    fingerprint (the stored one's count, start and end, grown by the new spans, as the
    summary upsert grows them) and all their spans.

    A trace comes in parts when it had spans stored before, or when the batch lacks its
    root or the parent of one of its spans. A trace that came whole (the usual case with
    a single exporter) is not kept: no later batch is likely to need it."""
    by_trace: dict[str, list[Span]] = {}
    for s in new:
        group = by_trace.get(s.trace_id)
        if group is None:
            by_trace[s.trace_id] = [s]
        else:
            group.append(s)
    old_by_trace: dict[str, list[StoredSpan]] = {}
    for x in old:
        old_by_trace.setdefault(x.trace_id, []).append(x)
    out = []
    for trace_id, group in by_trace.items():
        key = bytes.fromhex(trace_id)
        before = fingerprints.get(key)
        if before is None:
            ids = {s.span_id for s in group}
            whole = any(not s.parent_span_id for s in group) and all(
                not s.parent_span_id or s.parent_span_id in ids for s in group
            )
            if whole:
                continue
        count = len(group) + (before[0] if before else 0)
        start = min(s.start_ns for s in group)
        end = max(s.end_ns for s in group)
        if before is not None:
            start, end = min(before[1], start), max(before[2], end)
        spans = old_by_trace.get(trace_id, []) + [stored_span_of(s) for s in group]
        out.append((key, (count, start, end), spans))
    return out


def _pair_waiting_consumers(conn: Connection, producers: list[Span], calls: Calls) -> None:
    """Count the async calls of consumers stored before these producer spans arrived,
    and forget them (each is paired once)."""
    by_key = {(bytes.fromhex(p.span_id), bytes.fromhex(p.trace_id)): p for p in producers}
    rows = select_in(conn, unpaired_consumers, _UNPAIRED_COLUMNS, "producer_span_id", [k[0] for k in by_key])
    paired = []
    for span_id, trace_id, consumer_trace, consumer_span, service, start_ns, duration, failed in rows:
        producer = by_key.get((span_id, trace_id))
        if producer is None:
            continue
        calls.add_async(producer.service, service, start_ns, duration, bool(failed), consumer_trace.hex())
        paired.append((span_id, trace_id, consumer_trace, consumer_span))
    if paired:
        u = unpaired_consumers.c
        conn.execute(
            sa.delete(unpaired_consumers).where(
                u.producer_span_id == sa.bindparam("s"),
                u.producer_trace_id == sa.bindparam("t"),
                u.consumer_trace_id == sa.bindparam("ct"),
                u.consumer_span_id == sa.bindparam("cs"),
            ),
            [{"s": s, "t": t, "ct": ct, "cs": cs} for s, t, ct, cs in paired],
        )
