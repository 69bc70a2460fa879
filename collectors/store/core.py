"""SpanStore: the trace store over SQLAlchemy Core, for SQLite and PostgreSQL.

The store is one public surface composed of parts that are handed what they share:
the :class:`Database` (engines, write transactions, checkpoints, dialect differences),
the :class:`Catalog` (ids of resources and attribute keys), the :class:`Writer`, the
readers of traces and of the pattern tables, and :class:`Retention`. Each method here
says what it returns; the part that answers holds the details.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sqlalchemy.engine import Engine

from collectors.model import (
    BreakerCalls,
    BreakerTransition,
    Edge,
    EdgeStats,
    Failover,
    InstanceActivity,
    OperationTraffic,
    SagaInstance,
    SagaList,
    SagaStepSpan,
    ServiceMinute,
    Span,
    SpanOutline,
    TraceSummary,
)
from collectors.store.catalog import Catalog
from collectors.store.contracts import PruneResult, TraceList, TraceQuery, WriteResult
from collectors.store.database import Database
from collectors.store.experiments import Experiment, ExperimentLog
from collectors.store.patterns.breakers import BreakerReader
from collectors.store.patterns.discovery import FailoverReader
from collectors.store.patterns.sagas import SagaReader
from collectors.store.patterns.traffic import TrafficReader
from collectors.store.queries import TraceReader
from collectors.store.retention import Retention
from collectors.store.span_fragments import SpanFragments
from collectors.store.writer import Writer


class SpanStore:
    """The trace store over one database (SQLite file or PostgreSQL).

    Safe to share between threads. Several processes may write to the same database
    (see :class:`Database`). Unknown ids give empty results, never exceptions; every
    method that writes returns only after its commit and raises StoreError when the
    database refuses.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        catalog = Catalog(database)
        self.fragments = SpanFragments(database, catalog)
        self._writer = Writer(database, catalog, self.fragments)
        self._traces = TraceReader(database, self.fragments)
        self._traffic = TrafficReader(database, self._traces)
        self._breakers = BreakerReader(database)
        self._sagas = SagaReader(database)
        self._failovers = FailoverReader(database)
        self._experiments = ExperimentLog(database)
        self._retention = Retention(database, self._traces.count_spans)

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True, background_checkpoints: bool = True) -> SpanStore:
        """Open (and by default create or upgrade) the store at a SQLAlchemy URL.

        With ``background_checkpoints`` the store starts a thread, at its first write, that
        keeps SQLite's write-ahead log in bounds; without it, some other process must run
        :meth:`checkpoint_forever` (``spyglass serve`` runs it in its maintenance process).
        Raises StoreError with a one-line reason when the database cannot be reached.
        """
        return cls(Database.open(url, migrate=migrate, background_checkpoints=background_checkpoints))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine readers use (for migrations and tests)."""
        return self.database.engine

    def close(self) -> None:
        """Stop the checkpoint thread and release the connections."""
        self.database.close()

    # -- writes and maintenance ------------------------------------------------------------

    def write_spans(self, batch: Iterable[Span], received_ns: int | None = None) -> WriteResult:
        """Store spans, idempotently on (trace_id, span_id), and return after the commit.

        Spans already stored (an exporter's retry) are skipped and counted as duplicates;
        summaries, indexes and aggregates count each span once. Raises StoreError if the
        transaction cannot commit, in which case nothing of the batch is stored.
        """
        return self._writer.write_spans(batch, received_ns)

    def prune(self, *, older_than_ns: int | None = None, max_spans: int | None = None, chunk: int = 200) -> PruneResult:
        """Delete whole traces first received before ``older_than_ns``, then the oldest
        received traces until at most ``max_spans`` spans remain, ``chunk`` traces per
        transaction; then the index and aggregate rows older than every trace left."""
        return self._retention.prune(older_than_ns=older_than_ns, max_spans=max_spans, chunk=chunk)

    def checkpoint(self, truncate_above: int = 0) -> None:
        """Fold SQLite's write-ahead log back into the database (nothing on PostgreSQL)."""
        self.database.checkpoint(truncate_above)

    def checkpoint_forever(self, stop: threading.Event) -> None:
        """Checkpoint SQLite's log every few seconds until ``stop`` is set."""
        self.database.checkpoint_forever(stop)

    # -- traces ----------------------------------------------------------------------------

    def get_trace(self, trace_id: str) -> list[Span]:
        """All stored spans of a trace, ordered by start time; [] for an unknown id."""
        return self._traces.get_trace(trace_id)

    def get_trace_outline(self, trace_id: str) -> list[SpanOutline]:
        """A trace's spans without attributes, events or links (ids, service, name,
        times, status), ordered by start time; [] for an unknown id."""
        return self._traces.get_trace_outline(trace_id)

    def get_summaries(self, trace_ids: list[str]) -> list[TraceSummary]:
        """Summaries of the given traces, in the order asked; unknown ids are left out."""
        return self._traces.get_summaries(trace_ids)

    def previous_trace(self, trace_id: str) -> TraceSummary | None:
        """The latest earlier trace with the same root service and operation, or None."""
        return self._traces.previous_trace(trace_id)

    def find_traces(self, query: TraceQuery) -> TraceList:
        """Traces matching the query in ``query.sort`` order, at most ``query.limit`` (capped
        at MAX_QUERY_LIMIT); ``truncated`` says more matched. ValueError for an unknown sort."""
        return self._traces.find_traces(query)

    def recent_traces(self, limit: int = 20) -> list[TraceSummary]:
        """The most recently started traces."""
        return self._traces.recent_traces(limit)

    def count_spans(self) -> int:
        """Number of spans stored (from the summaries, without scanning spans)."""
        return self._traces.count_spans()

    def list_services(self) -> list[str]:
        """Names of every service that sent a span, sorted."""
        return self._traces.list_services()

    def list_operations(self, service: str | None = None) -> list[tuple[str, str, int]]:
        """(service, operation name, span kind) triples, sorted; all services when None."""
        return self._traces.list_operations(service)

    def dependencies(self, start_ns: int, end_ns: int) -> list[Edge]:
        """Service-to-service edges with calls starting in [start_ns, end_ns], by minute."""
        return self._traces.dependencies(start_ns, end_ns)

    def entry_calls(
        self, services: list[str], start_ns: int, end_ns: int, limit: int = 20_000
    ) -> list[tuple[str, int, int, bool]]:
        """(service, start_ns, duration_ns, failed) of the SERVER spans of ``services`` that
        started in [start_ns, end_ns), oldest first, at most ``limit``."""
        return self._traces.entry_calls(services, start_ns, end_ns, limit)

    # -- traffic ---------------------------------------------------------------------------

    def find_edge_stats(self, start_ns: int, end_ns: int) -> list[EdgeStats]:
        """Edges with calls in minutes overlapping [start_ns, end_ns], by parent, child, mode."""
        return self._traffic.find_edge_stats(start_ns, end_ns)

    def find_edge_traces(self, parent: str, child: str, start_ns: int, end_ns: int) -> list[TraceSummary]:
        """Traces in which ``parent`` called ``child`` in the window (kept at ingest, a few
        per minute), newest minute first."""
        return self._traffic.find_edge_traces(parent, child, start_ns, end_ns)

    def find_operation_traffic(self, start_ns: int, end_ns: int, service: str | None = None) -> list[OperationTraffic]:
        """Entry-span traffic per (service, operation) in the window, by service and name."""
        return self._traffic.find_operation_traffic(start_ns, end_ns, service)

    def find_service_minutes(self, service: str, start_ns: int, end_ns: int) -> list[ServiceMinute]:
        """The service's traffic in each minute of the window that had any, oldest first."""
        return self._traffic.find_service_minutes(service, start_ns, end_ns)

    def find_service_traces(
        self, service: str, start_ns: int, end_ns: int, *, failing: bool, limit: int = 10
    ) -> list[TraceSummary]:
        """The service's slowest traces in the window, or its failing ones most recent first."""
        return self._traffic.find_service_traces(service, start_ns, end_ns, failing=failing, limit=limit)

    def find_instance_activity(self, start_ns: int, end_ns: int) -> list[InstanceActivity]:
        """Instances that served requests in the window, by service and instance id."""
        return self._traffic.find_instance_activity(start_ns, end_ns)

    # -- breakers, fail-overs and sagas ----------------------------------------------------

    def find_breaker_calls(self, start_ns: int, end_ns: int) -> list[BreakerCalls]:
        """Per (breaker, caller): calls, failures, rejections and latest state in the window."""
        return self._breakers.find_breaker_calls(start_ns, end_ns)

    def find_breaker_transitions(
        self, start_ns: int, end_ns: int, name: str | None = None, limit: int = 5000
    ) -> list[BreakerTransition]:
        """State changes in [start_ns, end_ns], oldest first, at most ``limit``."""
        return self._breakers.find_breaker_transitions(start_ns, end_ns, name, limit)

    def find_last_transitions_before(self, names: Iterable[str], before_ns: int) -> dict[str, BreakerTransition]:
        """For each breaker name, its latest state change before ``before_ns`` (absent: none)."""
        return self._breakers.find_last_transitions_before(names, before_ns)

    def find_failovers(self, start_ns: int, end_ns: int, limit: int = 20) -> list[Failover]:
        """Fail-overs (``discovery.failover`` events) in [start_ns, end_ns], newest first,
        at most ``limit``."""
        return self._failovers.find_failovers(start_ns, end_ns, limit)

    def find_sagas(
        self, *, outcome: str | None = None, name: str | None = None, limit: int = 50, before_ns: int | None = None
    ) -> SagaList:
        """Saga instances, most recent start first; ``outcome`` may be ``running``."""
        return self._sagas.find_sagas(outcome=outcome, name=name, limit=limit, before_ns=before_ns)

    def count_sagas(self) -> dict[str, int]:
        """Sagas per outcome (``running`` for those without one); absent outcomes left out."""
        return self._sagas.count_sagas()

    def find_saga_step_names(self, name: str, sample: int = 50) -> list[tuple[int | None, str, str | None]]:
        """(index, step, kind) of the actions the latest ``sample`` sagas named ``name`` ran."""
        return self._sagas.find_step_names(name, sample)

    def get_saga(self, saga_id: str) -> SagaInstance | None:
        """One saga instance, or None when unknown."""
        return self._sagas.get_saga(saga_id)

    def find_saga_steps(self, saga_ids: Iterable[str]) -> dict[str, list[SagaStepSpan]]:
        """Step spans of the given sagas, each list ordered by start time."""
        return self._sagas.find_saga_steps(saga_ids)

    # -- chaos experiments -----------------------------------------------------------------

    def start_experiment(self, experiment: Experiment, *, exclusive: bool) -> None:
        """Store a new experiment. With ``exclusive``, refuse (ExperimentRunningError) while
        another one runs, checked and inserted in one write transaction."""
        self._experiments.start_experiment(experiment, exclusive=exclusive)

    def finish_experiment(self, experiment: Experiment) -> None:
        """Write the outcome of an experiment (status, verdict, checks, traces, findings)."""
        self._experiments.finish_experiment(experiment)

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        """One experiment, or None when unknown."""
        return self._experiments.get_experiment(experiment_id)

    def list_experiments(self, limit: int = 50) -> list[Experiment]:
        """The most recent experiments first."""
        return self._experiments.list_experiments(limit)
