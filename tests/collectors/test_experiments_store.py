"""Experiments as the store keeps them, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor

import pytest

from collectors.store import SpanStore
from collectors.store.experiments import (
    ABANDONED_AFTER_NS,
    DONE,
    RUNNING,
    Experiment,
    ExperimentRunningError,
)


def running(experiment_id: str, started_ns: int | None = None) -> Experiment:
    return Experiment(
        id=experiment_id,
        scenario="happy-order",
        status=RUNNING,
        hypothesis="every order completes",
        verdict=None,
        address="127.0.0.1",
        started_ns=started_ns or time.time_ns(),
        finished_ns=None,
    )


@pytest.fixture
def store(database_url: str):
    s = SpanStore.from_url(database_url)
    yield s
    s.close()


def test_an_experiment_reads_back_as_written_and_finished(store: SpanStore):
    store.start_experiment(running("e1"), exclusive=True)
    assert store.get_experiment("e1").status == RUNNING
    finished = Experiment(
        id="e1",
        scenario="happy-order",
        status=DONE,
        hypothesis="every order completes",
        verdict="passed",
        address="127.0.0.1",
        started_ns=store.get_experiment("e1").started_ns,
        finished_ns=time.time_ns(),
        changes=[{"instance_id": "payment", "decline": True}],
        checks=[{"name": "every saga ended compensated", "passed": True, "detail": "2 of 2"}],
        trace_ids=["ab" * 16],
        findings={"sagas": [{"saga_id": "s1", "compensated": ["create_order"]}]},
    )
    store.finish_experiment(finished)
    assert store.get_experiment("e1") == finished
    assert store.get_experiment("nope") is None


def test_only_one_experiment_runs_at_a_time_and_a_finished_one_frees_the_lab(store: SpanStore):
    store.start_experiment(running("first"), exclusive=True)
    with pytest.raises(ExperimentRunningError, match="first"):
        store.start_experiment(running("second"), exclusive=True)
    assert store.get_experiment("second") is None
    # A manual change is recorded while a run goes on.
    store.start_experiment(replace(running("manual"), status=DONE), exclusive=False)
    store.finish_experiment(replace(store.get_experiment("first"), status=DONE))
    store.start_experiment(running("third"), exclusive=True)
    assert [e.id for e in store.list_experiments()][0] == "third"


def test_two_starting_together_one_wins(store: SpanStore):
    def start(name: str) -> bool:
        try:
            store.start_experiment(running(name), exclusive=True)
            return True
        except ExperimentRunningError:
            return False

    with ThreadPoolExecutor(4) as pool:
        won = list(pool.map(start, ["a", "b", "c", "d"]))
    assert sum(won) == 1


def test_a_run_left_running_by_a_dead_process_does_not_block_the_lab_for_ever(store: SpanStore):
    long_ago = time.time_ns() - ABANDONED_AFTER_NS - 1
    store.start_experiment(running("orphan", long_ago), exclusive=True)
    store.start_experiment(running("fresh"), exclusive=True)
    assert [e.id for e in store.list_experiments()] == ["fresh", "orphan"]
