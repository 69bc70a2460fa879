"""Circuit breakers: calls made through each breaker per minute, and its state changes.

Calls are counted from spans carrying ``circuit_breaker.name``; transitions are the
``circuit_breaker.state_change`` events of any span, one row each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import BreakerCalls, BreakerTransition, Span
from collectors.store.patterns.conventions import (
    CB_EVENT,
    CB_FAILURES,
    CB_FROM,
    CB_NAME,
    CB_REJECTED,
    CB_RESET_TIMEOUT,
    CB_STATE,
    CB_THRESHOLD,
    CB_TO,
    PEER_SERVICE,
    bucket_of,
    in_window,
    whole_number,
)
from collectors.store.schema import breaker_calls, breaker_transitions

if TYPE_CHECKING:
    from collectors.store.database import Database


# -- writes (inside SpanStore.write_spans' transaction) ------------------------------------------


def collect_breaker_call(s: Span, bucket: int, calls: dict[tuple[str, str, int], list[Any]]) -> None:
    """Count a call made through a breaker (a span with ``circuit_breaker.name``), and keep
    the breaker's settings the span records."""
    attrs = s.attributes
    name = str(attrs[CB_NAME])
    state = str(attrs.get(CB_STATE, "") or "")
    rejected = attrs.get(CB_REJECTED) in (True, "true")
    callee = attrs.get(PEER_SERVICE)
    if not isinstance(callee, str) or not callee:
        callee = name.split("->", 1)[1].strip() if "->" in name else ""
    row = calls.get((name, s.service, bucket))
    if row is None:
        row = calls[(name, s.service, bucket)] = [callee, 0, 0, 0, 0, "", None, None]
    row[1] += 1
    row[2] += s.is_error and not rejected
    row[3] += rejected
    if s.start_ns >= row[4] and state:
        row[4], row[5] = s.start_ns, state
    threshold = whole_number(attrs.get(CB_THRESHOLD))
    if threshold is not None:
        row[6], row[7] = threshold, whole_number(attrs.get(CB_RESET_TIMEOUT))


def collect_transitions(s: Span, out: list[dict[str, Any]]) -> None:
    """Add a ``breaker_transitions`` row for each state-change event of the span."""
    for seq, event in enumerate(s.events):
        if event.name != CB_EVENT:
            continue
        a = event.attributes
        failures = a.get(CB_FAILURES)
        out.append(
            {
                "trace_id": bytes.fromhex(s.trace_id),
                "span_id": bytes.fromhex(s.span_id),
                "seq": seq,
                "name": str(a.get(CB_NAME) or s.attributes.get(CB_NAME) or ""),
                "caller": s.service,
                "time_ns": event.time_ns,
                "from_state": str(a.get(CB_FROM, "")),
                "to_state": str(a.get(CB_TO, "")),
                "failure_count": int(failures)
                if isinstance(failures, (int, float)) and not isinstance(failures, bool)
                else None,
            }
        )


def write_breaker_calls(database: Database, conn: Connection, calls: dict[tuple[str, str, int], list[Any]]) -> None:
    """Add a batch's calls to ``breaker_calls``: counts add up, the latest state wins."""
    values = [
        {
            "name": n,
            "caller": c,
            "bucket_ns": b,
            "callee": v[0],
            "call_count": v[1],
            "failure_count": v[2],
            "rejected_count": v[3],
            "last_ns": v[4],
            "last_state": v[5],
            "failure_threshold": v[6],
            "reset_timeout_ms": v[7],
        }
        for (n, c, b), v in calls.items()
    ]
    stmt = database.insert(breaker_calls)
    old, exc = breaker_calls.c, stmt.excluded
    newer = exc.last_ns >= old.last_ns
    stmt = stmt.on_conflict_do_update(
        index_elements=["name", "caller", "bucket_ns"],
        set_={
            "callee": sa.case((old.callee == "", exc.callee), else_=old.callee),
            "call_count": old.call_count + exc.call_count,
            "failure_count": old.failure_count + exc.failure_count,
            "rejected_count": old.rejected_count + exc.rejected_count,
            "last_state": sa.case((sa.and_(newer, exc.last_state != ""), exc.last_state), else_=old.last_state),
            "last_ns": sa.case((sa.and_(newer, exc.last_state != ""), exc.last_ns), else_=old.last_ns),
            "failure_threshold": sa.func.coalesce(exc.failure_threshold, old.failure_threshold),
            "reset_timeout_ms": sa.case(
                (exc.failure_threshold.is_(None), old.reset_timeout_ms), else_=exc.reset_timeout_ms
            ),
        },
    )
    conn.execute(stmt, values)


# -- reads ---------------------------------------------------------------------------------------


class BreakerReader:
    """Reads of the breaker calls and transitions."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def find_breaker_calls(self, start_ns: int, end_ns: int) -> list[BreakerCalls]:
        """Per (breaker, caller): calls, failures and rejections in the window, the state of
        the latest call and the latest settings recorded, sorted by name and caller."""
        c = breaker_calls.c
        stmt = (
            sa.select(
                c.name,
                c.caller,
                sa.func.max(c.callee),
                sa.func.sum(c.call_count),
                sa.func.sum(c.failure_count),
                sa.func.sum(c.rejected_count),
                sa.func.max(c.last_ns),
            )
            .where(*in_window(c.bucket_ns, start_ns, end_ns))
            .group_by(c.name, c.caller)
            .order_by(c.name, c.caller)
        )
        with self._database.connect() as conn:
            totals = conn.execute(stmt).all()
            if not totals:
                return []
            latest = {}
            # Every minute up to the window's end (the table holds a row per breaker and
            # minute, so this stays small): the run of the latest state may start before
            # the window.
            last = conn.execute(
                sa.select(
                    c.name, c.caller, c.bucket_ns, c.last_ns, c.last_state, c.failure_threshold, c.reset_timeout_ms
                )
                .where(
                    c.bucket_ns <= end_ns,
                    c.name.in_({r[0] for r in totals}),
                    sa.or_(c.last_state != "", c.failure_threshold.is_not(None)),
                )
                .order_by(c.bucket_ns)
            ).all()
        settings: dict[tuple[str, str], tuple[int, int, int | None]] = {}
        since: dict[tuple[str, str], int] = {}
        first_bucket = bucket_of(start_ns)
        for r in last:
            key = (r.name, r.caller)
            if r.last_state:
                if key not in latest or latest[key][1] != r.last_state:
                    since[key] = r.last_ns
                if key not in latest or r.last_ns >= latest[key][0]:
                    latest[key] = (r.last_ns, r.last_state)
            if (
                r.failure_threshold is not None
                and r.bucket_ns >= first_bucket
                and (key not in settings or r.bucket_ns >= settings[key][0])
            ):
                settings[key] = (r.bucket_ns, r.failure_threshold, r.reset_timeout_ms)
        out = []
        for r in totals:
            last_ns, last_state = latest.get((r[0], r[1]), (int(r[6]), ""))
            _, threshold, reset_ms = settings.get((r[0], r[1]), (0, None, None))
            out.append(
                BreakerCalls(
                    r[0],
                    r[1],
                    r[2] or "",
                    int(r[3]),
                    int(r[4]),
                    int(r[5]),
                    last_ns,
                    last_state,
                    threshold,
                    reset_ms,
                    since.get((r[0], r[1])) if last_state else None,
                )
            )
        return out

    def find_breaker_transitions(
        self, start_ns: int, end_ns: int, name: str | None = None, limit: int = 5000
    ) -> list[BreakerTransition]:
        """State changes in [start_ns, end_ns], oldest first, at most ``limit``."""
        c = breaker_transitions.c
        stmt = sa.select(breaker_transitions).where(c.time_ns >= start_ns, c.time_ns <= end_ns)
        if name is not None:
            stmt = stmt.where(c.name == name)
        stmt = stmt.order_by(c.time_ns, c.seq).limit(limit)
        with self._database.connect() as conn:
            return [_transition(r) for r in conn.execute(stmt)]

    def find_last_transitions_before(self, names: Iterable[str], before_ns: int) -> dict[str, BreakerTransition]:
        """For each breaker name, its latest state change before ``before_ns`` (absent: none)."""
        c = breaker_transitions.c
        out: dict[str, BreakerTransition] = {}
        with self._database.connect() as conn:
            for name in sorted(set(names)):
                row = conn.execute(
                    sa.select(breaker_transitions)
                    .where(c.name == name, c.time_ns < before_ns)
                    .order_by(c.time_ns.desc(), c.seq.desc())
                    .limit(1)
                ).first()
                if row is not None:
                    out[name] = _transition(row)
        return out


def _transition(r: Any) -> BreakerTransition:
    return BreakerTransition(
        r.name, r.caller, r.time_ns, r.from_state, r.to_state, r.failure_count, r.trace_id.hex(), r.span_id.hex()
    )
