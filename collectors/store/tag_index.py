"""The tag index: which traces may carry ``key=value``, for searches by attribute.

One row per trace fragment (the spans of one trace in one batch) in ``trace_tags``,
clustered by the fragment's start time: a 24-bit hash of every indexable ``key=value``
of its spans and resources (the low 3 bytes of a CRC-32), packed into one blob. A batch
of 512 spans writes a few dozen such rows inside its own transaction, appended at the
newest end of the table, instead of thousands of (value, trace) rows spread over an
inverted index; and a trace's tags cost 3 bytes each, once per trace rather than once per
span.

A search walks the fragments of its time window newest first and keeps those whose blob
contains the hash (``instr`` on SQLite, ``position`` on PostgreSQL, both in C). A hash
can collide, or match across two packed values: that only adds a candidate, which the
search discards after checking the trace's spans (with a fragment of 150 values, a
chance of about 3 in 100,000 per fragment: a few extra candidates in an hour's scan of a
10-million-span store; 4-byte hashes would cost a third more disk to avoid them). So the cost of a search is a scan of
the window's fragments (about 70 ms for an hour of a 10-million-span store here) and it
stops as soon as it has enough matches; a value on most traces answers at once.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from collectors.model import Resource
from collectors.store.bulk import upsert
from collectors.store.rows import MAX_INDEXED_VALUE_LENGTH, tag_text
from collectors.store.schema import trace_tags

_CHUNK = 200
_LITTLE = sys.byteorder == "little"
assert array("I").itemsize == 4, "the tag index packs hashes as 4-byte unsigned integers"

SERVICE_KEY = "\x00service"
"""The key under which a fragment's services are indexed (NUL: no attribute key that
reaches the store has one), so that a search by service goes through this index too."""

_SEEDS_LIMIT = 1 << 17
"""How many keys' CRC-32 seeds to keep."""


def tag_hash(key: str, text: str) -> int:
    """The 32-bit hash of ``key=text``: CRC-32 of the value seeded with the key's CRC-32."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"), _seed(key))


def _seed(key: str) -> int:
    seed = _seeds.get(key)
    if seed is None:
        seed = zlib.crc32(key.encode("utf-8", "surrogatepass"))
        if len(_seeds) < _SEEDS_LIMIT:
            _seeds[key] = seed
    return seed


_seeds: dict[str, int] = {}


def needle(key: str, text: str) -> bytes:
    """How ``key=text`` is packed in a ``trace_tags.hashes`` blob."""
    return _packed([tag_hash(key, text)])


_UNHASHABLE = (list, dict)


def packed_column_hashes(columns: Mapping[str, list[Any]], resources: Iterable[Resource]) -> bytes:
    """The packed hashes of a fragment: of every indexable value of each attribute key
    (``columns``: the key's values over the fragment's spans) and of its resources (their
    attributes and service names)."""
    out: set[int] = set()
    for key, column in columns.items():
        _add_hashes(out, key, column)
    by_key: dict[str, list[Any]] = defaultdict(list)
    for resource in resources:
        for key, value in resource.attributes.items():
            by_key[key].append(value)
        by_key[SERVICE_KEY].append(resource.service_name)
    for key, values in by_key.items():
        _add_hashes(out, key, values)
    return _packed(sorted(out))


def packed_hashes(attribute_maps: Iterable[dict[str, Any]]) -> bytes:
    """The packed hashes of every indexable ``key=value`` in the given attribute maps."""
    by_key: dict[str, list[Any]] = defaultdict(list)
    for attributes in attribute_maps:
        for key, value in attributes.items():
            by_key[key].append(value)
    out: set[int] = set()
    for key, values in by_key.items():
        _add_hashes(out, key, values)
    return _packed(sorted(out))


def _add_hashes(out: set[int], key: str, values: list[Any]) -> None:
    """Add the hashes of the indexable ones of one key's values.

    The distinct values are found by a set (in C) and each hashed once, without a cache:
    values are either repeated within a fragment (hashed once here) or unique to a span
    (a cache would only grow). In a set ``True``, ``1`` and ``1.0`` are one value (and
    likewise for 0), so such values index both readings, ``true`` and ``1``: the extra
    one can only add a candidate, which searches verify against the spans. Arrays, maps
    and strings longer than MAX_INDEXED_VALUE_LENGTH are not indexed."""
    try:
        distinct = set(values)
    except TypeError:  # a list or map among the values
        distinct = {v for v in values if type(v) not in _UNHASHABLE}
    seed = _seed(key)
    for value in distinct:
        kind = type(value)
        if kind is str:
            if len(value) <= MAX_INDEXED_VALUE_LENGTH:
                out.add(zlib.crc32(value.encode("utf-8", "surrogatepass"), seed))
        elif kind is int or kind is float or kind is bool:
            if value == 0 or value == 1:
                out.add(zlib.crc32(b"true" if value else b"false", seed))
                out.add(zlib.crc32(b"1" if value else b"0", seed))
            else:
                out.add(zlib.crc32((str(value) if kind is int else tag_text(value)).encode(), seed))


def _packed(values: Iterable[int]) -> bytes:
    """Hashes as their low 3 bytes, little-endian, whatever this machine's byte order."""
    packed = array("I", values)
    if not _LITTLE:
        packed.byteswap()
    out = bytearray(packed.tobytes())
    del out[3::4]  # each value's high byte
    return bytes(out)


_JOIN_FRAGMENTS = {
    # SQLite's || makes text of two blobs: cast the result back, or instr() would compare text.
    "sqlite": (("hashes", "CAST(OLD.hashes || NEW.hashes AS BLOB)"),),
    "postgresql": (("hashes", "OLD.hashes || NEW.hashes"),),
}


def write(conn: Connection, rows: list[tuple[int, bytes, bytes]]) -> None:
    """Add a batch's rows (inside the batch's transaction); a second fragment of a trace
    with the same start time joins the first."""
    sets = _JOIN_FRAGMENTS[conn.dialect.name]
    upsert(conn, trace_tags, ("start_ns", "trace_id", "hashes"), ("start_ns", "trace_id"), sets, rows)


class _contains(FunctionElement):
    """``haystack`` contains the bytes ``needle`` (a bytewise substring test)."""

    type = sa.Boolean()
    inherit_cache = True


@compiles(_contains)
def _contains_sqlite(element: _contains, compiler: Any, **kw: Any) -> str:
    haystack, needle_ = (compiler.process(c, **kw) for c in element.clauses)
    return f"instr({haystack}, {needle_}) > 0"


@compiles(_contains, "postgresql")
def _contains_postgresql(element: _contains, compiler: Any, **kw: Any) -> str:
    haystack, needle_ = (compiler.process(c, **kw) for c in element.clauses)
    return f"position({needle_} in {haystack}) > 0"


def candidates(conn: Connection, key: str, value: str, start_ns: int, end_ns: int) -> Iterator[list[bytes]]:
    """Yield chunks of trace ids that may carry ``key=value`` on a span of a fragment
    started in the window, newest first; the caller checks each against its spans."""
    wanted = needle(key, value)
    t = trace_tags.c
    seen: set[bytes] = set()
    cursor: tuple[int, bytes] | None = None
    while True:
        stmt = sa.select(t.start_ns, t.trace_id).where(
            t.start_ns >= start_ns, t.start_ns <= end_ns, _contains(t.hashes, sa.literal(wanted, sa.LargeBinary))
        )
        if cursor is not None:
            stmt = stmt.where(sa.or_(t.start_ns < cursor[0], sa.and_(t.start_ns == cursor[0], t.trace_id < cursor[1])))
        rows = conn.execute(stmt.order_by(t.start_ns.desc(), t.trace_id.desc()).limit(_CHUNK)).all()
        if not rows:
            return
        cursor = (rows[-1].start_ns, rows[-1].trace_id)
        # A trace has a row per fragment: it is a candidate once.
        chunk = [t for t in dict.fromkeys(r.trace_id for r in rows) if t not in seen]
        seen.update(chunk)
        if chunk:
            yield chunk
        if len(rows) < _CHUNK:
            return


def drop_before(conn: Connection, oldest_start_ns: int | None) -> None:
    """Delete fragments started before the oldest stored trace (all if None). Fragments
    of deleted traces newer than that stay until then; searches skip them."""
    if oldest_start_ns is None:
        conn.execute(sa.delete(trace_tags))
    else:
        conn.execute(sa.delete(trace_tags).where(trace_tags.c.start_ns < oldest_start_ns))
