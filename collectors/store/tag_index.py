"""The tag index: ``key=value`` -> traces, for searches by attribute.

Writing one index row per (attribute, trace) inside every batch's transaction costs
more than the spans themselves: the keys are random, so each batch dirties pages all
over the index. Instead each batch appends its entries as one packed row to
``attribute_staging`` (a sequential append, in the batch's own transaction, so nothing
is lost on a crash), and :func:`compact` moves staged entries into
``trace_attributes`` in bulk, sorted, keyed by (10-second bucket, hash, trace). Bulk,
sorted inserts into the newest buckets touch few pages.

On SQLite the index lives in a database file of its own (``<name>-tags.db``), so a
compaction writing it never holds the span database's write lock. Compaction runs about
once a second (in ``spyglass serve``'s maintenance process, or a thread of the store),
so an attribute becomes searchable within about a second of its batch's 200; a search
compacts first, so within one process it sees everything acknowledged. Compactions may
overlap: inserting is idempotent and staged rows are deleted only after their rows are in.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import Span
from collectors.store import rows as _rows
from collectors.store.bulk import insert_ignoring_duplicates
from collectors.store.schema import attribute_buckets, attribute_staging, trace_attributes

BUCKET_NS = 10_000_000_000
_BUCKETS_PER_QUERY = 90
_CHUNK = 200
_STAGED_PER_COMPACTION = 4  # about 13,000 rows: keeps each write-lock hold short
_HEADER = struct.Struct("<II")


def entries_for(spans: Iterable[Span]) -> dict[tuple[int, bytes], int]:
    """Index entries of a batch: (hash, trace id) -> earliest bucket it was seen in."""
    out: dict[tuple[int, bytes], int] = {}
    seen_resources: set[tuple[int, str]] = set()
    hashes_of = _rows.attribute_hashes
    for s in spans:
        key = bytes.fromhex(s.trace_id)
        bucket = s.start_ns // BUCKET_NS
        hashes = hashes_of(s.attributes)
        marker = (id(s.resource), s.trace_id)
        if marker not in seen_resources:
            seen_resources.add(marker)
            hashes += hashes_of(s.resource.attributes)
        for h in hashes:
            k = (h, key)
            if bucket < out.get(k, 1 << 62):
                out[k] = bucket
    return out


def pack(entries: dict[tuple[int, bytes], int]) -> bytes:
    """Pack entries as: header, trace ids, then hash, bucket and trace index arrays."""
    trace_index: dict[bytes, int] = {}
    hashes, buckets, traces = array("q"), array("q"), array("I")
    for (h, trace), bucket in entries.items():
        hashes.append(h)
        buckets.append(bucket)
        traces.append(trace_index.setdefault(trace, len(trace_index)))
    return b"".join(
        [
            _HEADER.pack(len(trace_index), len(hashes)),
            *trace_index,
            hashes.tobytes(),
            buckets.tobytes(),
            traces.tobytes(),
        ]
    )


def unpack(blob: bytes) -> list[tuple[int, int, bytes]]:
    """The (bucket, hash, trace id) rows of a packed payload."""
    n_traces, n = _HEADER.unpack_from(blob)
    pos = _HEADER.size
    ids = [blob[pos + 16 * i : pos + 16 * (i + 1)] for i in range(n_traces)]
    pos += 16 * n_traces
    hashes, buckets, traces = array("q"), array("q"), array("I")
    hashes.frombytes(blob[pos : pos + 8 * n])
    buckets.frombytes(blob[pos + 8 * n : pos + 16 * n])
    traces.frombytes(blob[pos + 16 * n : pos + 20 * n])
    return [(b, h, ids[t]) for b, h, t in zip(buckets, hashes, traces, strict=True)]


def payload_for(spans: Iterable[Span]) -> bytes | None:
    """The packed staging payload of a batch, or None when it has nothing to index.

    Pure CPU work: the write path computes it before taking the write lock.
    """
    entries = entries_for(spans)
    return pack(entries) if entries else None


def stage(conn: Connection, payload: bytes | None) -> None:
    """Append a batch's payload to the staging table (inside the batch's transaction)."""
    if payload is not None:
        conn.execute(sa.insert(attribute_staging), {"payload": payload})


def has_staged(conn: Connection) -> bool:
    """Whether any staged entries wait for compaction."""
    return conn.execute(sa.select(attribute_staging.c.id).limit(1)).first() is not None


def read_staged(conn: Connection) -> list[tuple[int, bytes]]:
    """The oldest staged payloads, a bounded number, as (id, payload)."""
    rows = conn.execute(
        sa.select(attribute_staging.c.id, attribute_staging.c.payload)
        .order_by(attribute_staging.c.id)
        .limit(_STAGED_PER_COMPACTION)
    ).all()
    return [(r.id, r.payload) for r in rows]


def insert_staged(conn: Connection, staged: list[tuple[int, bytes]]) -> int:
    """Insert the rows of staged payloads into the index, sorted; returns the row count.

    Idempotent: a compaction interrupted before it deleted its staged rows can run again.
    """
    rows: set[tuple[int, int, bytes]] = set()
    for _, payload in staged:
        rows.update(unpack(payload))
    ordered = sorted(rows)
    insert_ignoring_duplicates(conn, trace_attributes, ("bucket", "hash", "trace_id"), ordered)
    insert_ignoring_duplicates(conn, attribute_buckets, ("bucket",), [(b,) for b in sorted({b for b, _, _ in ordered})])
    return len(ordered)


def delete_staged(conn: Connection, ids: list[int]) -> None:
    """Forget staged payloads once their rows are in the index."""
    conn.execute(sa.delete(attribute_staging).where(attribute_staging.c.id.in_(ids)))


def move_legacy_rows(source: Connection, target: Connection) -> int:
    """Move index rows left in the main database (stores written before the index had a
    file of its own) into the index database; returns the rows moved."""
    rows = [tuple(r) for r in source.execute(sa.select(trace_attributes))]
    insert_ignoring_duplicates(target, trace_attributes, ("bucket", "hash", "trace_id"), sorted(rows))
    insert_ignoring_duplicates(target, attribute_buckets, ("bucket",), [(b,) for b in sorted({r[0] for r in rows})])
    source.execute(sa.delete(trace_attributes))
    source.execute(sa.delete(attribute_buckets))
    return len(rows)


def candidates(conn: Connection, key: str, value: str, start_ns: int, end_ns: int) -> Iterator[list[bytes]]:
    """Yield chunks of trace ids with ``key=value`` on a span started in the window, newest first.

    Order is by 10-second bucket; the caller checks each candidate against its spans.
    """
    h = _rows.attribute_hash(key, value)
    buckets = (
        conn.execute(
            sa.select(attribute_buckets.c.bucket)
            .where(
                attribute_buckets.c.bucket >= start_ns // BUCKET_NS, attribute_buckets.c.bucket <= end_ns // BUCKET_NS
            )
            .order_by(attribute_buckets.c.bucket.desc())
        )
        .scalars()
        .all()
    )
    seen: set[bytes] = set()
    i, size = 0, 6  # the newest minute first, then groups twice as large, up to the cap
    while i < len(buckets):
        group = buckets[i : i + size]
        i, size = i + size, min(size * 2, _BUCKETS_PER_QUERY)
        rows = conn.execute(
            sa.select(trace_attributes.c.bucket, trace_attributes.c.trace_id)
            .where(trace_attributes.c.hash == h, trace_attributes.c.bucket.in_(group))
            .order_by(trace_attributes.c.bucket.desc())
        ).all()
        chunk = []
        for r in rows:
            if r.trace_id not in seen:
                seen.add(r.trace_id)
                chunk.append(r.trace_id)
        # A common value matches thousands of traces per group of buckets: hand them over
        # in small chunks, so the caller stops checking spans as soon as it has enough.
        for j in range(0, len(chunk), _CHUNK):
            yield chunk[j : j + _CHUNK]


def drop_before(conn: Connection, oldest_start_ns: int | None) -> None:
    """Delete index rows in buckets entirely before the oldest stored trace (all if None)."""
    if oldest_start_ns is None:
        conn.execute(sa.delete(trace_attributes))
        conn.execute(sa.delete(attribute_buckets))
        return
    cutoff = oldest_start_ns // BUCKET_NS
    conn.execute(sa.delete(trace_attributes).where(trace_attributes.c.bucket < cutoff))
    conn.execute(sa.delete(attribute_buckets).where(attribute_buckets.c.bucket < cutoff))
