"""Chaos experiments: one row per run of a scenario or manual change of fault settings.

The table is declared on the store's schema (so the migration check sees it) and written
only through the functions here. JSON columns hold what changed, the checks and the trace
ids; the store does not look inside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from collectors.store.schema import metadata

if TYPE_CHECKING:
    from collectors.store.core import SpanStore

RUNNING = "running"
DONE = "done"
ABANDONED_AFTER_NS = 10 * 60 * 1_000_000_000
"""A run still marked running after this long belonged to a process that died."""

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("scenario", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("hypothesis", sa.Text, nullable=False),
    sa.Column("verdict", sa.Text, nullable=True),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("started_ns", sa.BigInteger, nullable=False),
    sa.Column("finished_ns", sa.BigInteger, nullable=True),
    sa.Column("changes", sa.Text, nullable=False),
    sa.Column("checks", sa.Text, nullable=False),
    sa.Column("trace_ids", sa.Text, nullable=False),
    sa.Column("findings", sa.Text, nullable=False),
    sa.Index("experiments_started", "started_ns"),
)


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


def start_experiment(store: SpanStore, experiment: Experiment, *, exclusive: bool) -> None:
    """Store a new experiment. With ``exclusive``, refuse (ExperimentRunningError) while
    another one runs, checked and inserted in one write transaction."""
    with store.engine.begin() as conn:
        if exclusive and store.dialect == "postgresql":
            conn.execute(sa.text("LOCK TABLE experiments IN SHARE ROW EXCLUSIVE MODE"))
        # Insert first: on SQLite the insert takes the write lock, so a second writer's
        # check below waits for this transaction and then sees this row.
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


def finish_experiment(store: SpanStore, experiment: Experiment) -> None:
    """Write the outcome of an experiment (status, verdict, checks, traces, findings)."""
    values = _row(experiment)
    del values["id"]
    with store.engine.begin() as conn:
        conn.execute(experiments.update().where(experiments.c.id == experiment.id).values(**values))


def get_experiment(store: SpanStore, experiment_id: str) -> Experiment | None:
    """One experiment, or None when unknown."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(experiments).where(experiments.c.id == experiment_id)).first()
    return _experiment(row) if row is not None else None


def list_experiments(store: SpanStore, limit: int = 50) -> list[Experiment]:
    """The most recent experiments first."""
    c = experiments.c
    stmt = sa.select(experiments).order_by(c.started_ns.desc(), c.id.desc()).limit(limit)
    with store.engine.connect() as conn:
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
