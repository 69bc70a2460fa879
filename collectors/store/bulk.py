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
    """INSERT rows (tuples in ``columns`` order), skipping any whose key already exists."""
    if rows:
        conn.exec_driver_sql(_sql(conn.dialect.name, table.name, columns), list(rows))


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
        conn.exec_driver_sql(_upsert_sql(conn.dialect.name, table.name, columns, keys, sets), list(rows))


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
