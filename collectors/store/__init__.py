"""The span store: SQLAlchemy Core tables and every query, for SQLite and PostgreSQL."""

from collectors.store import experiments  # noqa: F401 (declares its table on the schema)

from collectors.store.core import (
    MAX_QUERY_LIMIT,
    SORT_ORDERS,
    PruneResult,
    SpanStore,
    StoreError,
    TraceList,
    TraceQuery,
    WriteResult,
)

__all__ = [
    "MAX_QUERY_LIMIT",
    "SORT_ORDERS",
    "PruneResult",
    "SpanStore",
    "StoreError",
    "TraceList",
    "TraceQuery",
    "WriteResult",
]
