"""Running experiments: one at a time, each in a background thread of the dashboard.

A run stores the experiment as ``running``, lets its scenario drive the demo through a
:class:`~app.chaos_lab.Lab`, restores every fault (also when the scenario fails), waits
until the traces it caused have settled in the store, judges them and stores the verdict.
A manual change of fault settings is stored as an experiment of its own (no verdict).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from app.analysis import chaos as judge
from app.analysis import phases
from app.analysis.chaos import Check
from app.chaos_lab import EXPERIMENT_BAGGAGE, Lab
from app.scenarios import Evidence, Scenario
from collectors.store import MAX_QUERY_LIMIT, SpanStore, TraceQuery
from collectors.store.experiments import (
    DONE,
    RUNNING,
    Experiment,
    ExperimentRunningError,
)

log = logging.getLogger(__name__)
MANUAL = "manual"
SETTLE_S = 1.0
"""Traces count as arrived once no new span came for this long (exporters batch every 200 ms)."""
SETTLE_LIMIT_S = 20.0
NS = 1_000_000_000


class ExperimentRunner:
    """Starts scenario runs for one dashboard process, never two at once."""

    def __init__(self, store: SpanStore, registry_url: str, control_token: str, launcher_url: str = "") -> None:
        self._store = store
        self._registry_url = registry_url
        self._launcher_url = launcher_url
        self._control_token = control_token
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, scenario: Scenario, address: str) -> Experiment:
        """Store and start a run of ``scenario``; ExperimentRunningError while one runs."""
        experiment = Experiment(
            id=secrets.token_hex(8),
            scenario=scenario.name,
            status=RUNNING,
            hypothesis=scenario.hypothesis,
            verdict=None,
            address=address,
            started_ns=time.time_ns(),
            finished_ns=None,
        )
        with self._lock:
            self._store.start_experiment(experiment, exclusive=True)
            self._thread = threading.Thread(
                target=self._run, args=(scenario, experiment), name=f"experiment-{experiment.id}", daemon=True
            )
            self._thread.start()
        return experiment

    def wait(self, timeout_s: float) -> None:
        """Wait for the current run to end (tests and shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def start_tour(self, scenarios: Sequence[Scenario], address: str) -> Experiment:
        """Run every scenario in turn, each its own experiment; the first starts now (so
        ExperimentRunningError comes at once), the rest after each other. A tour stops
        early if someone else's experiment takes the lab in between. Returns the first."""
        first = self.start(scenarios[0], address)
        with self._lock:
            run = self._thread

        def rest() -> None:
            current = run
            for scenario in scenarios[1:]:
                if current is not None:
                    current.join()
                try:
                    self.start(scenario, address)
                except ExperimentRunningError:
                    log.warning("the tour stopped before %s: another experiment is running", scenario.name)
                    return
                with self._lock:
                    current = self._thread

        threading.Thread(target=rest, name="chaos-tour", daemon=True).start()
        return first

    def record_manual(self, address: str, changes: list[dict[str, Any]]) -> Experiment:
        """Store a manual change of fault settings as a finished experiment."""
        now = time.time_ns()
        experiment = Experiment(
            id=secrets.token_hex(8),
            scenario=MANUAL,
            status=DONE,
            hypothesis="",
            verdict=None,
            address=address,
            started_ns=now,
            finished_ns=now,
            changes=changes,
        )
        self._store.start_experiment(experiment, exclusive=False)
        return experiment

    def _run(self, scenario: Scenario, experiment: Experiment) -> None:
        try:
            result = self._judge(scenario, experiment)
        except Exception as err:  # the run must end stored, whatever broke
            log.exception("experiment %s failed", experiment.id)
            broken = Check("the experiment could be judged", False, f"{type(err).__name__}: {err}")
            result = _finished(experiment, [broken], [], {})
        self._store.finish_experiment(result)

    def _judge(self, scenario: Scenario, experiment: Experiment) -> Experiment:
        lab = Lab(experiment.id, self._registry_url, self._control_token, self._launcher_url)
        notes: dict[str, Any] = {}
        failure = None
        try:
            lab.connect()
            scenario.drive(lab, notes)
        except Exception as err:  # a scenario that breaks is a failed run, not a crash
            failure = f"{type(err).__name__}: {err}"
        finally:
            problems = lab.restore()
            restored_ns = time.time_ns()
        traces = self._collect(experiment, lab.sent)
        end_ns = time.time_ns()
        transitions = {
            name: [
                (t.time_ns, t.from_state, t.to_state)
                for t in self._store.find_breaker_transitions(experiment.started_ns, end_ns, name=name)
            ]
            for name in scenario.breakers
        }
        consumers = self._consumers(experiment, traces, scenario.follows_messages) if scenario.follows_messages else {}
        checks: list[Check] = []
        if failure is not None:
            checks.append(Check("the scenario ran to the end", False, failure))
        checks += scenario.judge(Evidence(traces, lab.sent, transitions, notes, consumers))
        cleared = len({c["instance_id"] for c in lab.changes if "stopped" not in c})
        detail = "; ".join(problems) if problems else f"{cleared} instance{'' if cleared == 1 else 's'} cleared"
        if lab.started_again and not problems:
            detail += f", {', '.join(lab.started_again)} started again and registered"
        checks.append(Check("every fault was restored", not problems, detail))
        changed = {str(c["service"]) for c in lab.changes if isinstance(c.get("service"), str)}
        findings = {
            "sent": lab.sent,
            "restored_ns": restored_ns,
            "services": phases.affected_services(traces, changed, consumers),
            "sagas": [r.public() for r in judge.sagas(traces)],
            "transitions": {n: [list(t) for t in ts] for n, ts in transitions.items()},
            "first_failing_trace": judge.first_failing_trace(traces),
            "notes": {k: v for k, v in notes.items() if isinstance(v, (int, str, bool, list))},
        }
        ordered = sorted(traces, key=lambda tid: min((s.start_ns for s in traces[tid]), default=0))
        return _finished(experiment, checks, ordered, findings, lab.changes)

    def _collect(self, experiment: Experiment, sent: int) -> dict[str, list]:
        """The experiment's traces, once they have all arrived (or the wait ran out)."""
        query = TraceQuery(
            start_ns=experiment.started_ns - NS,
            end_ns=time.time_ns() + 60 * NS,
            tags={EXPERIMENT_BAGGAGE: experiment.id},
            limit=MAX_QUERY_LIMIT,
        )
        deadline = time.monotonic() + SETTLE_LIMIT_S
        last: tuple[int, int] = (-1, -1)
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            found = self._store.find_traces(query).traces
            now = (len(found), sum(t.span_count for t in found))
            if now != last:
                last, stable_since = now, time.monotonic()
            elif now[0] >= sent and time.monotonic() - stable_since >= SETTLE_S:
                break
            time.sleep(0.2)
        found = self._store.find_traces(query).traces
        return {t.trace_id: self._store.get_trace(t.trace_id) for t in found}


    def _consumers(self, experiment: Experiment, traces: dict[str, list], consumer: str) -> dict[str, list]:
        """The traces that processed the messages published in ``traces`` (a consumer
        starts a trace of its own), found by message id; waits a while for ``consumer``'s
        late ones."""
        produced = judge.published_messages(traces)
        found: dict[str, list] = {}
        deadline = time.monotonic() + SETTLE_LIMIT_S
        while True:
            for message_id in produced:
                query = TraceQuery(
                    start_ns=experiment.started_ns - NS,
                    end_ns=time.time_ns() + 60 * NS,
                    tags={judge.MESSAGE_ID: message_id},
                    limit=10,
                )
                for summary in self._store.find_traces(query).traces:
                    if summary.trace_id not in traces:
                        found[summary.trace_id] = self._store.get_trace(summary.trace_id)
            if set(judge.consumer_spans(found, consumer)) >= set(produced) or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


def _finished(
    experiment: Experiment,
    checks: list[Check],
    trace_ids: list[str],
    findings: dict[str, Any],
    changes: list[dict[str, Any]] | None = None,
) -> Experiment:
    passed = bool(checks) and all(c.passed for c in checks)
    return Experiment(
        id=experiment.id,
        scenario=experiment.scenario,
        status=DONE,
        hypothesis=experiment.hypothesis,
        verdict="passed" if passed else "failed",
        address=experiment.address,
        started_ns=experiment.started_ns,
        finished_ns=time.time_ns(),
        changes=changes if changes is not None else experiment.changes,
        checks=[c.public() for c in checks],
        trace_ids=trace_ids,
        findings=findings,
    )


__all__ = ["MANUAL", "ExperimentRunner", "ExperimentRunningError"]
