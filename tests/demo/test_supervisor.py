"""The supervisor with real child processes: a start on request that comes while the same
child is being stopped waits for the old process to be gone, the stop ends the process it
was asked to end (SIGKILL when SIGTERM is ignored), stopping them all takes one stop
timeout rather than one per child, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from demo_services.supervisor import Child, Supervisor
from tests.helpers import group_members, wait_until

STUBBORN = (
    "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
)
"""A child that ignores SIGTERM (as one stuck in its shutdown does), and says when it does."""


def stubborn_child(tmp_path: Path) -> tuple[Child, Path]:
    ready = tmp_path / "ready"
    child = Child(
        "stubborn",
        [sys.executable, "-c", STUBBORN, str(ready)],
        dict(os.environ),
        tmp_path / "stubborn.log",
        "http://127.0.0.1:1/health",
    )
    return child, ready


def test_a_start_during_a_stop_waits_for_the_old_process_and_leaves_none_behind(tmp_path: Path) -> None:
    child, ready = stubborn_child(tmp_path)
    supervisor = Supervisor({"stubborn": child}, lambda _line: None, stop_timeout_s=0.5)
    supervisor.start_all()
    first = child.process
    assert first is not None
    try:
        wait_until(ready.exists, timeout=30, message="the child to ignore SIGTERM")
        ready.unlink()
        stopping = threading.Thread(target=supervisor.hold, args=(child,))
        stopping.start()
        wait_until(lambda: child.held, message="the stop to begin")

        started = supervisor.release(child)

        # The old process was gone (killed: it ignored SIGTERM) before the new one started.
        assert started and first.poll() == -signal.SIGKILL
        second = child.process
        assert second is not None and second is not first
        stopping.join(10)
        assert not stopping.is_alive()
        # The stop's SIGKILL went to the process it stopped, not to the one started since.
        wait_until(ready.exists, timeout=30, message="the new child to start")
        assert second.poll() is None and not child.held
    finally:
        supervisor.begin_stopping()
        supervisor.stop_all()
    assert group_members(first.pid) == [] and group_members(second.pid) == []


def test_a_stop_after_stopping_began_is_refused_and_stop_all_ends_the_child(tmp_path: Path) -> None:
    child, ready = stubborn_child(tmp_path)
    supervisor = Supervisor({"stubborn": child}, lambda _line: None, stop_timeout_s=0.5)
    supervisor.start_all()
    process = child.process
    assert process is not None
    wait_until(ready.exists, timeout=30, message="the child to ignore SIGTERM")
    supervisor.begin_stopping()
    try:
        for change in (supervisor.hold, supervisor.release):
            try:
                change(child)
            except RuntimeError as err:
                assert "stopping" in str(err)
            else:
                raise AssertionError(f"{change.__name__} went ahead while stopping")
    finally:
        supervisor.stop_all()
    assert process.poll() == -signal.SIGKILL
    assert group_members(process.pid) == []


def test_stop_all_gives_the_children_their_stop_timeout_together(tmp_path: Path) -> None:
    children = {}
    for n in range(4):
        (tmp_path / str(n)).mkdir()
        child, _ready = stubborn_child(tmp_path / str(n))
        children[f"stubborn-{n}"] = child
    supervisor = Supervisor(children, lambda _line: None, stop_timeout_s=1.0)
    supervisor.start_all()
    processes = [c.process for c in children.values()]
    try:
        wait_until(lambda: all((tmp_path / str(n) / "ready").exists() for n in range(4)), timeout=30)
    finally:
        supervisor.begin_stopping()
        began = time.monotonic()
        supervisor.stop_all()
        took = time.monotonic() - began

    # One timeout for all four (they ignore SIGTERM), not four one after another.
    assert 1.0 <= took < 3.0, took
    assert all(p is not None and p.poll() == -signal.SIGKILL for p in processes)
    assert all(p is not None and group_members(p.pid) == [] for p in processes)
