"""The span store's public contracts: results, the search query, errors and limits.

Shared by the parts of the store and its callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors.model import TraceSummary

MAX_QUERY_LIMIT = 1500
"""Hard upper bound on traces returned by one search, whatever the caller asks."""

SORT_ORDERS = ("recent", "slowest", "spans", "errors")
"""The orders a trace search can return its results in."""

MAX_SORT_SCAN = 20_000
"""Matches examined at most for a sort other than ``recent``; beyond it the newest win."""


class StoreError(RuntimeError):
    """The store cannot be opened or cannot commit; the caller answers 503."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one :meth:`SpanStore.write_spans` call stored."""

    inserted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """A trace search. Times are nanoseconds; tags match span or resource attributes.

    A trace matches when one of its spans satisfies every span-level condition
    (service, operation, duration bounds, tags) at once, as in Jaeger; ``status``
    applies to the trace (``error``: it has an error span; ``ok``: it has none).
    ``sort`` is one of SORT_ORDERS: ``recent`` (newest start first), ``slowest``
    (longest trace first), ``spans`` (most spans first), ``errors`` (most errors first).
    """

    start_ns: int
    end_ns: int
    service: str | None = None
    operation: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    status: str = "any"
    limit: int = 20
    sort: str = "recent"


@dataclass(frozen=True, slots=True)
class TraceList:
    """Search results, most recent first; ``truncated`` says more traces matched."""

    traces: list[TraceSummary]
    truncated: bool


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one retention pass removed."""

    traces: int
    spans: int


def first_line(err: BaseException) -> str:
    """The first line of a database error, for one-line messages."""
    text = str(getattr(err, "orig", None) or err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__
