"""The saga log: every saga instance's state and each step's start, completion, failure and
compensation, kept in the orchestrating service's own database.

The orchestrator writes an entry before and after every phase of every step, each in its
own transaction, so a process that dies between two steps (or in the middle of one) leaves
a log from which the next process can tell what was done: which actions completed, whether
the pivot was passed, which compensations already ran. Context keys starting with ``_``
(a card number, say) are never written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

RUNNING = "running"
"""Before the pivot: a failure (or a crash) is compensated."""
FORWARD = "forward"
"""The pivot completed: the remaining steps are carried forward, never compensated."""
COMPENSATING = "compensating"
FINISHED = ("completed", "compensated", "failed")
UNFINISHED = (RUNNING, FORWARD, COMPENSATING)
STARTED = "started"
DONE = "completed"
FAILED_ENTRY = "failed"


@dataclass(frozen=True)
class LogEntry:
    """One line of the log: a phase of a step started, completed or failed."""

    step: str
    step_index: int
    phase: str
    event: str
    detail: str
    recorded_ns: int


@dataclass
class SagaRecord:
    """A saga instance as the log has it."""

    saga_id: str
    name: str
    status: str
    context: dict[str, Any]
    trace_parent: dict[str, str]
    started_ns: int
    updated_ns: int
    entries: list[LogEntry] = field(default_factory=list)

    def completed(self, phase: str) -> list[str]:
        """The steps whose ``phase`` completed, in the order they completed."""
        return [e.step for e in self.entries if e.phase == phase and e.event == DONE]

    @property
    def finished(self) -> bool:
        """Whether the saga has its outcome."""
        return self.status in FINISHED

    def public(self) -> dict[str, Any]:
        """JSON-ready form (the persisted context, which holds no ``_`` keys)."""
        return {
            "saga_id": self.saga_id,
            "name": self.name,
            "status": self.status,
            "context": self.context,
            "started_ns": self.started_ns,
            "updated_ns": self.updated_ns,
            "entries": [e.__dict__ for e in self.entries],
        }


def persisted(context: dict[str, Any]) -> dict[str, Any]:
    """The part of a saga context that is written to the log."""
    return {k: v for k, v in context.items() if not k.startswith("_")}


class SagaLog:
    """Saga instances (``saga_instances``) and their entries (``saga_log``) in ``engine``.

    The tables are added to ``metadata``; the owner creates them with the rest of its schema.
    """

    def __init__(self, engine: sa.Engine, metadata: sa.MetaData) -> None:
        self._engine = engine
        self.instances = sa.Table(
            "saga_instances",
            metadata,
            sa.Column("saga_id", sa.String, primary_key=True),
            sa.Column("name", sa.String, nullable=False),
            sa.Column("status", sa.String, nullable=False, index=True),
            sa.Column("context", sa.Text, nullable=False),
            sa.Column("trace_parent", sa.Text, nullable=False),
            sa.Column("started_ns", sa.BigInteger, nullable=False),
            sa.Column("updated_ns", sa.BigInteger, nullable=False, index=True),
        )
        self.entries = sa.Table(
            "saga_log",
            metadata,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("saga_id", sa.String, nullable=False, index=True),
            sa.Column("step", sa.String, nullable=False),
            sa.Column("step_index", sa.Integer, nullable=False),
            sa.Column("phase", sa.String, nullable=False),
            sa.Column("event", sa.String, nullable=False),
            sa.Column("detail", sa.Text, nullable=False),
            sa.Column("recorded_ns", sa.BigInteger, nullable=False),
        )

    def begin(self, saga_id: str, name: str, context: dict[str, Any], trace_parent: dict[str, str]) -> None:
        """Record a new saga instance, running, with the trace context of its root span."""
        now = time.time_ns()
        with self._engine.begin() as conn:
            conn.execute(
                self.instances.insert().values(
                    saga_id=saga_id,
                    name=name,
                    status=RUNNING,
                    context=json.dumps(persisted(context)),
                    trace_parent=json.dumps(trace_parent),
                    started_ns=now,
                    updated_ns=now,
                )
            )

    def record(
        self,
        saga_id: str,
        step: str,
        step_index: int,
        phase: str,
        event: str,
        *,
        detail: str = "",
        context: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> None:
        """Append one entry; with ``context`` or ``status``, update the instance in the same
        transaction (a completed step's context, the new state after the pivot)."""
        now = time.time_ns()
        with self._engine.begin() as conn:
            conn.execute(
                self.entries.insert().values(
                    saga_id=saga_id,
                    step=step,
                    step_index=step_index,
                    phase=phase,
                    event=event,
                    detail=detail[:500],
                    recorded_ns=now,
                )
            )
            self._update(conn, saga_id, now, context, status)

    def set_status(self, saga_id: str, status: str) -> None:
        """Change the instance's state (``compensating``, or its outcome at the end)."""
        with self._engine.begin() as conn:
            self._update(conn, saga_id, time.time_ns(), None, status)

    def get(self, saga_id: str) -> SagaRecord | None:
        """One saga instance with its entries, or None."""
        found = self._load(self.instances.c.saga_id == saga_id)
        return found[0] if found else None

    def unfinished(self) -> list[SagaRecord]:
        """Every instance without an outcome, oldest first (read through the status index,
        which the recovery loop does every second however long the log grows)."""
        return self._load(self.instances.c.status.in_(UNFINISHED))

    def recent(self, limit: int = 50) -> list[SagaRecord]:
        """The most recently changed instances, newest first."""
        with self._engine.connect() as conn:
            ids = conn.execute(
                sa.select(self.instances.c.saga_id).order_by(self.instances.c.updated_ns.desc()).limit(limit)
            ).scalars()
            wanted = list(ids)
        records = self._load(self.instances.c.saga_id.in_(wanted))
        return sorted(records, key=lambda r: r.updated_ns, reverse=True)

    def _update(
        self,
        conn: sa.Connection,
        saga_id: str,
        now: int,
        context: dict[str, Any] | None,
        status: str | None,
    ) -> None:
        values: dict[str, Any] = {"updated_ns": now}
        if context is not None:
            values["context"] = json.dumps(persisted(context))
        if status is not None:
            values["status"] = status
        conn.execute(self.instances.update().where(self.instances.c.saga_id == saga_id).values(**values))

    def _load(self, condition: Any) -> list[SagaRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(self.instances).where(condition).order_by(self.instances.c.started_ns))
            records = {
                r.saga_id: SagaRecord(
                    r.saga_id,
                    r.name,
                    r.status,
                    json.loads(r.context),
                    json.loads(r.trace_parent),
                    r.started_ns,
                    r.updated_ns,
                )
                for r in rows
            }
            if records:
                entries = conn.execute(
                    sa.select(self.entries)
                    .where(self.entries.c.saga_id.in_(list(records)))
                    .order_by(self.entries.c.seq)
                )
                for e in entries:
                    records[e.saga_id].entries.append(
                        LogEntry(e.step, e.step_index, e.phase, e.event, e.detail, e.recorded_ns)
                    )
        return list(records.values())
