"""SQL helpers of the pattern modules: the dialect's insert and least/greatest, a time window."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from collectors.store.patterns.conventions import BUCKET_NS


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _least_greatest(conn: Connection) -> tuple[Any, Any]:
    if conn.dialect.name == "postgresql":
        return sa.func.least, sa.func.greatest
    return sa.func.min, sa.func.max


def _window(start_ns: int, end_ns: int, column: Any) -> list[Any]:
    return [column >= start_ns - start_ns % BUCKET_NS, column <= end_ns]
