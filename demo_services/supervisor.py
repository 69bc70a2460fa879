"""Supervision of the demo's child processes.

A ``Child`` is one process the demo runs (its command, environment, log file and health
URL). The ``Supervisor`` starts them, restarts one that crashes (backing off when it keeps
crashing), stops and starts one on request (an instance stopped that way is held: not
restarted until started), and stops them all, so that no process is left behind.

Every change of a child's process (a start, a restart, a stop on request) is made under
one lock, and none begins once ``begin_stopping`` has run. A stop and a start on request
of one child never overlap: a start waits until the process being stopped is gone, so
there are never two processes of one instance (the second unable to bind its port), and
the supervisor always holds the one process of a child it must end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from demo_services.process_control import DemoStopping

STOP_TIMEOUT_S = 5.0
RESTART_BACKOFF_S = 0.5
RESTART_BACKOFF_MAX_S = 10.0


@dataclass
class Child:
    """One child process of the demo, started again (a new process) on each ``start``."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str
    restart: bool = True
    held: bool = False
    """Stopped on purpose through the control endpoint: not restarted until started."""
    restarts: int = 0
    restart_at: float | None = None
    process: subprocess.Popen | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)
    changing: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held through a stop or a start on request, so that the two never overlap."""

    def start(self) -> None:
        """Start the child's process, in a session (and process group) of its own."""
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> subprocess.Popen | None:
        """The child's process while it runs, else None (read once: the monitor may set
        ``process`` to None meanwhile)."""
        process = self.process
        return process if process is not None and process.poll() is None else None

    def kill_group(self) -> None:
        """SIGKILL the child's process group: the child and whatever it started
        (Spyglass's workers and maintenance process)."""
        if self.process is not None:
            kill_group(self.process)

    def close_log(self) -> None:
        """Close the log file of the last process started."""
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group ``process`` leads (each child starts a session of its own)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Supervisor:
    """Starts, watches and stops ``children`` (by name); ``say`` reports what it does. A
    child asked to stop gets ``stop_timeout_s`` seconds after SIGTERM before SIGKILL."""

    def __init__(
        self, children: dict[str, Child], say: Callable[[str], None], stop_timeout_s: float = STOP_TIMEOUT_S
    ) -> None:
        self.children = children
        self._say = say
        self._stop_timeout_s = stop_timeout_s
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()
        self._monitor: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """Whether stopping (or giving up a start) has begun."""
        return self._stopping.is_set()

    def interrupt(self) -> None:
        """Mark that stopping has begun (safe to call from a signal handler)."""
        self._stopping.set()

    def start_all(self) -> None:
        """Start every child."""
        for child in self.children.values():
            child.start()

    def watch(self) -> None:
        """Restart crashed children from now on, in a daemon thread."""
        self._monitor = threading.Thread(target=self._watch, name="demo-monitor", daemon=True)
        self._monitor.start()

    def begin_stopping(self) -> None:
        """From now on no child is started, restarted, or stopped on request."""
        with self._lifecycle:
            self._stopping.set()

    def stop_all(self) -> None:
        """Terminate every child (Spyglass last); kill stragglers and whatever a child left
        of its process group. Call ``begin_stopping`` first.

        The services get the stop timeout together, not one after another (nine children
        slow to exit would otherwise take nine times as long), and whatever interrupts the
        wait, every child's group is still killed."""
        ordered = [c for n, c in self.children.items() if n != "spyglass"]
        ordered += [c for n, c in self.children.items() if n == "spyglass"]
        for group in (ordered[:-1], ordered[-1:]):
            for child in group:
                if child.process is not None and child.process.poll() is None:
                    child.process.terminate()
            deadline = time.monotonic() + self._stop_timeout_s
            try:
                for child in group:
                    if child.process is not None:
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            finally:
                for child in group:
                    if child.process is not None:
                        child.kill_group()  # a straggler, and what it started and left behind
                        child.process.wait()
        for child in self.children.values():
            child.close_log()

    def pids(self) -> dict[str, int]:
        """Return the process id of each running child."""
        return {name: process.pid for name, c in self.children.items() if (process := c.alive()) is not None}

    def kill(self, name: str, *, restart: bool = False) -> None:
        """Kill child ``name`` with SIGKILL (a crash); restart it only if ``restart``."""
        child = self.children[name]
        # The monitor forgets an exited child that is not to be restarted (process None)
        # as soon as it sees it exit, so the process is held here before it is killed.
        process = child.process
        assert process is not None
        child.restart = restart
        process.kill()
        process.wait()

    def hold(self, child: Child) -> None:
        """Stop ``child``'s process (SIGTERM, so it deregisters; SIGKILL after the stop
        timeout) and keep it stopped until ``release``; returns once it has exited."""
        with child.changing:
            with self._lifecycle:
                if self._stopping.is_set():
                    raise DemoStopping("the demo is stopping")
                child.held = True
                process = child.process
                if process is not None and process.poll() is None:
                    process.terminate()
            if process is None:
                return
            try:
                process.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                kill_group(process)  # this process's group, whatever child.process is by now
                process.wait()
        self._say(f"[demo] {child.name} stopped on request")

    def release(self, child: Child) -> bool:
        """Start ``child`` again if it is held (once a stop in progress is over); return
        whether it was started."""
        with child.changing, self._lifecycle:
            if self._stopping.is_set():
                raise DemoStopping("the demo is stopping")
            if not child.held:
                return False
            if child.log_file is not None:
                child.log_file.close()
            child.restarts = 0
            child.restart_at = None
            child.start()
            child.held = False  # only now: the monitor must never see the old, exited process unheld
        self._say(f"[demo] {child.name} started on request")
        return True

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for name, child in self.children.items():
                if child.held or child.process is None or child.process.poll() is None:
                    continue
                if self._stopping.is_set():
                    return
                if not child.restart:
                    self._say(f"[demo] {name} exited with code {child.process.returncode}; not restarting")
                    child.process = None
                    continue
                if child.restart_at is None:
                    # Back off when a child keeps crashing: 0.5 s, 1 s, 2 s ... up to 10 s.
                    delay = min(RESTART_BACKOFF_S * 2**child.restarts, RESTART_BACKOFF_MAX_S)
                    child.restart_at = now + (delay if child.restarts else 0.0)
                    self._say(
                        f"[demo] {name} exited with code {child.process.returncode}; "
                        f"restarting in {child.restart_at - now:.1f} s"
                    )
                if now >= child.restart_at:
                    with self._lifecycle:
                        if self._stopping.is_set():
                            return
                        if child.held or child.process is None or child.process.poll() is None:
                            # Stopped, or started, on request since it was seen exiting.
                            child.restart_at = None
                            continue
                        child.restarts += 1
                        child.restart_at = None
                        if child.log_file is not None:
                            child.log_file.close()
                        child.start()
