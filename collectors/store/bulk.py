"""Bulk inserts straight through the driver's ``executemany``.

SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself on
the hot path (hundreds of rows a batch), so the few bulk inserts of the write path
render their SQL once per table and hand plain tuples to the driver. Values must
already be in the driver's types (int, str, bytes, None).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@lru_cache(maxsize=64)
def _sql(dialect: str, table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    if dialect == "sqlite":
        return f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING"


def insert_ignoring_duplicates(
    conn: Connection, table: sa.Table, columns: tuple[str, ...], rows: Sequence[tuple]
) -> None:
    """INSERT rows (tuples in ``columns`` order), skipping any whose key already exists.

    On PostgreSQL the rows go in one fixed order (see :func:`_in_lock_order`)."""
    if rows:
        conn.exec_driver_sql(_sql(conn.dialect.name, table.name, columns), _in_lock_order(conn, rows, None))


def adding(summed: Sequence[str], maxed: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
    """SET clauses of an upsert that adds ``summed`` and keeps the larger of ``maxed``."""
    return tuple((c, f"OLD.{c} + NEW.{c}") for c in summed) + tuple((c, f"GREATEST(OLD.{c}, NEW.{c})") for c in maxed)


@lru_cache(maxsize=64)
def _upsert_sql(
    dialect: str, table: str, columns: tuple[str, ...], keys: tuple[str, ...], sets: tuple[tuple[str, str], ...]
) -> str:
    placeholder = "?" if dialect == "sqlite" else "%s"
    assignments = []
    for column, expression in sets:
        expression = expression.replace("OLD.", f"{table}.").replace("NEW.", "excluded.")
        if dialect == "sqlite":  # SQLite's two-argument min() and max() are PostgreSQL's LEAST and GREATEST
            expression = expression.replace("GREATEST(", "max(").replace("LEAST(", "min(")
        assignments.append(f"{column} = {expression}")
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([placeholder] * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(assignments)}"
    )


def upsert(
    conn: Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    sets: tuple[tuple[str, str], ...],
    rows: Sequence[tuple],
) -> None:
    """INSERT rows (tuples in ``columns`` order); where the ``keys`` exist, apply ``sets``:
    (column, SQL expression) pairs in which ``OLD.c`` is the stored value, ``NEW.c`` the
    offered one, and GREATEST/LEAST work on both databases. The SQL is rendered once."""
    if rows:
        key_at = tuple(columns.index(k) for k in keys)
        conn.exec_driver_sql(
            _upsert_sql(conn.dialect.name, table.name, columns, keys, sets), _in_lock_order(conn, rows, key_at)
        )


def lock_traces(conn: Connection, trace_ids: Sequence[bytes]) -> None:
    """On PostgreSQL, hold a lock on each trace (16-byte id) until the transaction ends.

    Writers of one trace then follow each other: the second reads what the first
    committed (READ COMMITTED takes a new snapshot per statement), so a summary or an
    edge is never built from spans another transaction is still inserting. The locks are
    taken in one order, so two writers never wait on each other. SQLite needs none: its
    writers hold the whole database.
    """
    if conn.dialect.name != "postgresql" or not trace_ids:
        return
    keys = sorted({int.from_bytes(t[:8], "big", signed=True) for t in trace_ids})
    conn.exec_driver_sql(
        "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(k, n) ORDER BY n", (keys,)
    )


def _in_lock_order(conn: Connection, rows: Sequence[tuple], key_at: tuple[int, ...] | None) -> list[tuple]:
    """The rows as a list; on PostgreSQL sorted by their key (``key_at``: its positions;
    None: the whole row), so that concurrent writers lock shared aggregate rows in the
    same order and cannot deadlock."""
    if conn.dialect.name != "postgresql":
        return list(rows)
    if key_at is None:
        return sorted(rows, key=repr)
    return sorted(rows, key=lambda r: repr(tuple(r[i] for i in key_at)))


def select_in(
    conn: Connection, table: sa.Table, columns: tuple[str, ...], key: str, values: Sequence[Any]
) -> list[tuple]:
    """SELECT ``columns`` of the rows whose ``key`` is one of ``values``, as plain tuples
    (in chunks, below any database's limit on bound parameters)."""
    placeholder = "?" if conn.dialect.name == "sqlite" else "%s"
    out: list[tuple] = []
    for i in range(0, len(values), _IN_CHUNK):
        part = tuple(values[i : i + _IN_CHUNK])
        sql = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {key} IN ({', '.join([placeholder] * len(part))})"
        out.extend(tuple(r) for r in conn.exec_driver_sql(sql, part))
    return out


_IN_CHUNK = 900
