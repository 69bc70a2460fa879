"""Service discovery: one row per fail-over, the ``discovery.failover`` events of any span.

A client that finds instances through the registry and gives up on one (it refused the
connection, or said it is out of service) records the event on the span of the call
before trying the next instance (docs/conventions.md, "Service discovery"); the overview
and the registry page list the latest ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from collectors.model import Failover, Span
from collectors.store.patterns.conventions import (
    FAILOVER_EVENT,
    FAILOVER_INSTANCE,
    FAILOVER_NEXT,
    FAILOVER_REASON,
    PEER_SERVICE,
)
from collectors.store.schema import failovers

if TYPE_CHECKING:
    from collectors.store.database import Database

REASON_LENGTH = 500
"""Characters of a fail-over's reason kept (an error text can be long)."""

# -- writes (inside SpanStore.write_spans' transaction) ------------------------------------------


def collect_failovers(s: Span, out: list[dict[str, Any]]) -> None:
    """Add a ``failovers`` row for each fail-over event of the span."""
    for seq, event in enumerate(s.events):
        if event.name != FAILOVER_EVENT:
            continue
        a = event.attributes
        out.append(
            {
                "trace_id": bytes.fromhex(s.trace_id),
                "span_id": bytes.fromhex(s.span_id),
                "seq": seq,
                "service": s.service,
                "instance_id": _text(a.get(FAILOVER_INSTANCE)),
                "reason": _text(a.get(FAILOVER_REASON))[:REASON_LENGTH],
                "time_ns": event.time_ns,
                "callee": _text(s.attributes.get(PEER_SERVICE)),
                "next_instance_id": _text(a.get(FAILOVER_NEXT)),
            }
        )


def _text(value: Any) -> str:
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


# -- reads ---------------------------------------------------------------------------------------


class FailoverReader:
    """Reads of the fail-overs."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def find_failovers(self, start_ns: int, end_ns: int, limit: int = 20) -> list[Failover]:
        """Fail-overs in [start_ns, end_ns], newest first, at most ``limit``."""
        c = failovers.c
        stmt = (
            sa.select(failovers)
            .where(c.time_ns >= start_ns, c.time_ns <= end_ns)
            .order_by(c.time_ns.desc(), c.seq.desc())
            .limit(limit)
        )
        with self._database.connect() as conn:
            return [
                Failover(
                    r.service,
                    r.instance_id,
                    r.reason,
                    r.time_ns,
                    r.trace_id.hex(),
                    r.span_id.hex(),
                    r.callee,
                    r.next_instance_id,
                )
                for r in conn.execute(stmt)
            ]
