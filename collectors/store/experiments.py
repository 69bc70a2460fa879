"""Chaos experiments: one row per run of a scenario or manual change of fault settings.

The table is declared in :mod:`.schema` and used only through :class:`ExperimentLog`,
which :class:`collectors.store.SpanStore` exposes as its own methods. JSON columns hold
what changed, the checks and the trace ids; the store does not look inside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from collectors.store.database import Database
from collectors.store.schema import experiments

RUNNING = "running"
DONE = "done"
ABANDONED_AFTER_NS = 10 * 60 * 1_000_000_000
"""A run still marked running after this long belonged to a process that died."""


@dataclass(frozen=True, slots=True)
class Experiment:
    """One stored experiment. ``checks`` are ``{"name", "passed", "detail"}`` objects;
    ``findings`` holds what the judgement saw (saga outcomes, breaker transitions, errors)."""

    id: str
    scenario: str
    status: str
    hypothesis: str
    verdict: str | None
    address: str
    started_ns: int
    finished_ns: int | None
    changes: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)


class ExperimentRunningError(RuntimeError):
    """Another experiment is still running."""

    def __init__(self, running: Experiment) -> None:
        super().__init__(f"experiment {running.id} ({running.scenario}) is still running")
        self.running = running


class ExperimentLog:
    """Reads and writes of the ``experiments`` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def start_experiment(self, experiment: Experiment, *, exclusive: bool) -> None:
        """Store a new experiment. With ``exclusive``, refuse (ExperimentRunningError) while
        another one runs, checked and inserted in one write transaction."""
        with self._database.write() as conn:
            if exclusive and self._database.dialect == "postgresql":
                conn.execute(sa.text("LOCK TABLE experiments IN SHARE ROW EXCLUSIVE MODE"))
            # On SQLite the write transaction holds the write lock from its start, so a second
            # writer's check below waits for this transaction and then sees this row.
            conn.execute(experiments.insert().values(**_row(experiment)))
            if exclusive:
                c = experiments.c
                row = conn.execute(
                    sa.select(experiments)
                    .where(
                        c.status == RUNNING,
                        c.id != experiment.id,
                        c.started_ns > experiment.started_ns - ABANDONED_AFTER_NS,
                    )
                    .limit(1)
                ).first()
                if row is not None:
                    raise ExperimentRunningError(_experiment(row))

    def finish_experiment(self, experiment: Experiment) -> None:
        """Write the outcome of an experiment (status, verdict, checks, traces, findings)."""
        values = _row(experiment)
        del values["id"]
        with self._database.write() as conn:
            conn.execute(experiments.update().where(experiments.c.id == experiment.id).values(**values))

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        """One experiment, or None when unknown."""
        with self._database.connect() as conn:
            row = conn.execute(sa.select(experiments).where(experiments.c.id == experiment_id)).first()
        return _experiment(row) if row is not None else None

    def list_experiments(self, limit: int = 50) -> list[Experiment]:
        """The most recent experiments first."""
        c = experiments.c
        stmt = sa.select(experiments).order_by(c.started_ns.desc(), c.id.desc()).limit(limit)
        with self._database.connect() as conn:
            return [_experiment(r) for r in conn.execute(stmt)]


def _row(e: Experiment) -> dict[str, Any]:
    return {
        "id": e.id,
        "scenario": e.scenario,
        "status": e.status,
        "hypothesis": e.hypothesis,
        "verdict": e.verdict,
        "address": e.address,
        "started_ns": e.started_ns,
        "finished_ns": e.finished_ns,
        "changes": json.dumps(e.changes),
        "checks": json.dumps(e.checks),
        "trace_ids": json.dumps(e.trace_ids),
        "findings": json.dumps(e.findings),
    }


def _experiment(r: Any) -> Experiment:
    return Experiment(
        id=r.id,
        scenario=r.scenario,
        status=r.status,
        hypothesis=r.hypothesis,
        verdict=r.verdict,
        address=r.address,
        started_ns=int(r.started_ns),
        finished_ns=int(r.finished_ns) if r.finished_ns is not None else None,
        changes=json.loads(r.changes),
        checks=json.loads(r.checks),
        trace_ids=json.loads(r.trace_ids),
        findings=json.loads(r.findings),
    )
