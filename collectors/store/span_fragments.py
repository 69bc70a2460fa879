"""The ``span_fragments`` table: where spans are kept, a trace fragment per row.

A fragment is the spans of one trace that arrived in one batch, encoded together
(:mod:`collectors.store.fragments`) and compressed (:mod:`collectors.store.compression`).
A trace is read whole, by its id: its fragments, decompressed and decoded. Everything
that searches without a trace id reads the tables kept beside them (summaries, the
service and tag indexes, the aggregates), never the fragments of every trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import Resource, Span, SpanOutline
from collectors.store.catalog import Catalog
from collectors.store.compression import Compression
from collectors.store.database import Database
from collectors.store import tag_index
from collectors.store.fragments import Fragment, encode_with_columns
from collectors.store.schema import span_fragments

_IN_CHUNK = 500
"""Trace ids per ``IN`` list."""
COLUMNS = ("trace_id", "span_count", "dictionary_id", "data")
"""Column order of the rows :meth:`SpanFragments.rows_for` returns."""


class SpanFragments:
    """Encodes, writes and reads trace fragments. Safe to share between threads."""

    def __init__(self, database: Database, catalog: Catalog) -> None:
        self._catalog = catalog
        self.compression = Compression(database)

    def rows_for(
        self, by_trace: Mapping[str, Sequence[Span]], resource_ids: Mapping[int, int], key_ids: Mapping[str, int]
    ) -> tuple[list[tuple[bytes, int, int, bytes]], list[tuple[int, bytes, bytes]]]:
        """The rows of the fragments of a batch, one per trace (in :data:`COLUMNS` order),
        and their tag index rows (``trace_tags``: start, trace id, packed hashes)."""
        fragments, tags = [], []
        for trace_id, spans in by_trace.items():
            raw, columns = encode_with_columns(spans, resource_ids, key_ids)
            dictionary_id, data = self.compression.compress(raw)
            key = bytes.fromhex(trace_id)
            fragments.append((key, len(spans), dictionary_id, data))
            resources = {id(s.resource): s.resource for s in spans}.values()
            hashes = tag_index.packed_column_hashes(columns, resources)
            if hashes:
                tags.append((min(s.start_ns for s in spans), key, hashes))
        return fragments, tags

    def read(self, conn: Connection, trace_keys: Iterable[bytes]) -> list[Fragment]:
        """The stored fragments of the given traces (binary ids), each trace's in the
        order they arrived."""
        keys = list(dict.fromkeys(trace_keys))
        c = span_fragments.c
        out: list[Fragment] = []
        for i in range(0, len(keys), _IN_CHUNK):
            rows = conn.execute(
                sa.select(c.trace_id, c.dictionary_id, c.data)
                .where(c.trace_id.in_(keys[i : i + _IN_CHUNK]))
                .order_by(c.trace_id, c.id)
            )
            decompress = self.compression.decompress
            out.extend(Fragment(r.trace_id.hex(), decompress(conn, r.dictionary_id, r.data)) for r in rows)
        return out

    def spans(self, conn: Connection, fragments: Sequence[Fragment]) -> list[Span]:
        """Every span of the fragments, whole (attribute keys and resources resolved)."""
        if not fragments:
            return []
        names, resources = self.key_names(conn, fragments), self.resources(conn, fragments)
        return [s for f in fragments for s in f.spans(names, resources)]

    def key_names(self, conn: Connection, fragments: Sequence[Fragment]) -> Mapping[int, str]:
        """The names of the attribute keys the fragments use (and others)."""
        return self._catalog.key_names(conn, {k for f in fragments for k in f.key_ids})

    def resources(self, conn: Connection, fragments: Sequence[Fragment]) -> Mapping[int, Resource]:
        """The resources the fragments' spans refer to (and others), by row id."""
        return self._catalog.resources(conn, {r for f in fragments for r in f.resource_ids})

    def trace_spans(self, conn: Connection, trace_keys: Iterable[bytes]) -> list[Span]:
        """Every stored span of the given traces."""
        return self.spans(conn, self.read(conn, trace_keys))

    def outlines(self, conn: Connection, trace_key: bytes) -> list[SpanOutline]:
        """The outline of every stored span of one trace."""
        return [o for f in self.read(conn, [trace_key]) for o in f.outlines()]

    def delete(self, conn: Connection, trace_keys: Sequence[bytes]) -> None:
        """Remove every fragment of the given traces."""
        for i in range(0, len(trace_keys), _IN_CHUNK):
            conn.execute(sa.delete(span_fragments).where(span_fragments.c.trace_id.in_(trace_keys[i : i + _IN_CHUNK])))
