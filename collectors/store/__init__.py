"""The span store: SQLAlchemy Core tables and every query, for SQLite and PostgreSQL.

:class:`SpanStore` is its one public surface; the contracts (queries, results, errors)
come with it.
"""

from collectors.store.contracts import (
    MAX_QUERY_LIMIT,
    SORT_ORDERS,
    PruneResult,
    StoreError,
    TraceList,
    TraceQuery,
    WriteResult,
)
from collectors.store.core import SpanStore

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
