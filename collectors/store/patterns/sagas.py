"""Sagas: one row per saga instance and one per step span (an action or a compensation).

A saga's spans carry ``saga.id``; its root span (no ``saga.step``) brings the name, the
service and the outcome, and until it arrives the saga is running.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import RUNNING, SagaInstance, SagaList, SagaStepSpan, Span
from collectors.store.patterns.conventions import (
    SAGA_ID,
    SAGA_NAME,
    SAGA_OUTCOME,
    SAGA_PHASE,
    SAGA_STEP,
    SAGA_STEP_INDEX,
    SAGA_STEP_KIND,
)
from collectors.store.schema import saga_steps, sagas

if TYPE_CHECKING:
    from collectors.store.database import Database

# -- writes (inside SpanStore.write_spans' transaction) ------------------------------------------


def collect_saga(s: Span, steps: list[dict[str, Any]], saga_rows: dict[str, dict[str, Any]]) -> None:
    """Add a saga span to the batch's step rows (a step) and saga rows (root or step)."""
    attrs = s.attributes
    saga_id = str(attrs[SAGA_ID])
    name = str(attrs.get(SAGA_NAME, "") or "")
    step = attrs.get(SAGA_STEP)
    is_root = step is None
    if not is_root:
        index = attrs.get(SAGA_STEP_INDEX)
        steps.append(
            {
                "trace_id": bytes.fromhex(s.trace_id),
                "span_id": bytes.fromhex(s.span_id),
                "saga_id": saga_id,
                "step": str(step),
                "step_index": int(index) if isinstance(index, (int, float)) and not isinstance(index, bool) else None,
                "phase": str(attrs.get(SAGA_PHASE, "action")),
                "service": s.service,
                "start_ns": s.start_ns,
                "end_ns": s.end_ns,
                "status_code": s.status_code,
                "status_message": s.status_message or None,
                "kind": str(attrs[SAGA_STEP_KIND]) if attrs.get(SAGA_STEP_KIND) is not None else None,
            }
        )
    outcome = attrs.get(SAGA_OUTCOME) if is_root else None
    row = saga_rows.get(saga_id)
    new = {
        "saga_id": saga_id,
        "name": name,
        "trace_id": bytes.fromhex(s.trace_id),
        "root_span_id": bytes.fromhex(s.span_id) if is_root else None,
        "service": s.service,
        "start_ns": s.start_ns,
        "end_ns": s.end_ns,
        "outcome": str(outcome) if outcome is not None else None,
    }
    if row is None:
        saga_rows[saga_id] = new
        return
    row["start_ns"] = min(row["start_ns"], new["start_ns"])
    row["end_ns"] = max(row["end_ns"], new["end_ns"])
    if is_root:
        for key in ("name", "trace_id", "root_span_id", "service", "outcome"):
            row[key] = new[key]
    elif not row["name"]:
        row["name"] = name


def write_sagas(database: Database, conn: Connection, values: list[dict[str, Any]]) -> None:
    """Merge a batch's saga rows into ``sagas``: the root span's fields win, times widen."""
    stmt = database.insert(sagas)
    old, exc = sagas.c, stmt.excluded
    from_root = exc.root_span_id.is_not(None)
    least, greatest = database.least_greatest()
    stmt = stmt.on_conflict_do_update(
        index_elements=["saga_id"],
        set_={
            "name": sa.case((sa.or_(from_root, old.name == ""), exc.name), else_=old.name),
            "trace_id": sa.case((from_root, exc.trace_id), else_=old.trace_id),
            "root_span_id": sa.case((from_root, exc.root_span_id), else_=old.root_span_id),
            "service": sa.case((from_root, exc.service), else_=old.service),
            "outcome": sa.case((from_root, exc.outcome), else_=old.outcome),
            "start_ns": least(old.start_ns, exc.start_ns),
            "end_ns": greatest(old.end_ns, exc.end_ns),
        },
    )
    conn.execute(stmt, values)


# -- reads ---------------------------------------------------------------------------------------


class SagaReader:
    """Reads of the saga instances and their step spans."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def find_sagas(
        self,
        *,
        outcome: str | None = None,
        name: str | None = None,
        limit: int = 50,
        before_ns: int | None = None,
    ) -> SagaList:
        """Saga instances, most recent start first; ``outcome`` may be ``running``."""
        c = sagas.c
        stmt = sa.select(sagas)
        if outcome == RUNNING:
            stmt = stmt.where(c.outcome.is_(None))
        elif outcome:
            stmt = stmt.where(c.outcome == outcome)
        if name:
            stmt = stmt.where(c.name == name)
        if before_ns is not None:
            stmt = stmt.where(c.start_ns <= before_ns)
        stmt = stmt.order_by(c.start_ns.desc(), c.saga_id.desc()).limit(limit + 1)
        with self._database.connect() as conn:
            rows = [_saga(r) for r in conn.execute(stmt)]
        return SagaList(rows[:limit], len(rows) > limit)

    def count_sagas(self) -> dict[str, int]:
        """How many sagas ended with each outcome, and how many are ``running``; outcomes
        with no saga are left out."""
        c = sagas.c
        with self._database.connect() as conn:
            rows = conn.execute(sa.select(c.outcome, sa.func.count()).group_by(c.outcome)).all()
        return {(outcome if outcome is not None else RUNNING): int(n) for outcome, n in rows}

    def find_step_names(self, name: str, sample: int = 50) -> list[tuple[int | None, str, str | None]]:
        """The (index, step, kind) of the actions run by the latest ``sample`` sagas named
        ``name``, by index then step: the steps a saga of that type is known to have (a
        step recorded with several kinds is listed once per kind)."""
        c, sc = sagas.c, saga_steps.c
        latest = (
            sa.select(c.saga_id).where(c.name == name).order_by(c.start_ns.desc()).limit(sample).subquery()
        )
        stmt = (
            sa.select(sc.step_index, sc.step, sc.kind)
            .where(sc.saga_id.in_(sa.select(latest.c.saga_id)), sc.phase == "action")
            .distinct()
        )
        with self._database.connect() as conn:
            rows = conn.execute(stmt).all()
        return sorted(
            ((r.step_index, r.step, r.kind) for r in rows), key=lambda r: (r[0] is None, r[0] or 0, r[1], r[2] or "")
        )

    def get_saga(self, saga_id: str) -> SagaInstance | None:
        """One saga instance, or None when unknown."""
        with self._database.connect() as conn:
            row = conn.execute(sa.select(sagas).where(sagas.c.saga_id == saga_id)).first()
        return _saga(row) if row is not None else None

    def find_saga_steps(self, saga_ids: Iterable[str]) -> dict[str, list[SagaStepSpan]]:
        """Step spans of the given sagas, each list ordered by start time."""
        ids = list(saga_ids)
        out: dict[str, list[SagaStepSpan]] = {i: [] for i in ids}
        if not ids:
            return out
        c = saga_steps.c
        with self._database.connect() as conn:
            for r in conn.execute(sa.select(saga_steps).where(c.saga_id.in_(ids)).order_by(c.start_ns, c.span_id)):
                out[r.saga_id].append(
                    SagaStepSpan(
                        r.saga_id,
                        r.step,
                        r.step_index,
                        r.phase,
                        r.service,
                        r.start_ns,
                        r.end_ns,
                        r.status_code,
                        r.status_message or "",
                        r.trace_id.hex(),
                        r.span_id.hex(),
                        r.kind,
                    )
                )
        return out


def _saga(r: Any) -> SagaInstance:
    return SagaInstance(
        r.saga_id,
        r.name,
        r.trace_id.hex(),
        r.root_span_id.hex() if r.root_span_id else "",
        r.service,
        r.start_ns,
        r.end_ns,
        r.outcome,
    )
