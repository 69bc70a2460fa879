"""Bulk inserts straight through the driver's ``executemany``.

SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself on
the hot path (hundreds of rows a batch), so the few bulk inserts of the write path
render their SQL once per table and hand plain tuples to the driver. Values must
already be in the driver's types (int, str, bytes, None).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

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
