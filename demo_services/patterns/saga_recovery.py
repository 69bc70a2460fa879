"""Resuming the sagas a process left unfinished, from the saga log.

At start-up, and every ``interval_s`` after, :class:`SagaRecovery` reads the log's
unfinished sagas and hands each to :meth:`SagaOrchestrator.resume`: a saga whose process
died mid-way (kill -9, a crash), and one a request left pending (a retriable step or a
compensation still failing with a transient error). A saga that stays pending is tried
again after a doubling wait (1 s, 2 s ... 30 s).
"""

from __future__ import annotations

import logging
import threading
import time

from demo_services.patterns.saga import PENDING, SagaOrchestrator, SagaResult
from demo_services.patterns.saga_log import SagaLog

RESUME_BACKOFF_MAX_S = 30.0
FIRST_WAIT_S = 1.0
_log = logging.getLogger(__name__)


class SagaRecovery:
    """Carry on, for ``saga``, every unfinished saga of its name in ``log``."""

    def __init__(self, saga: SagaOrchestrator, log: SagaLog) -> None:
        self._saga = saga
        self._log = log
        self._lock = threading.Lock()
        self._next_try: dict[str, tuple[float, float]] = {}

    def resume_unfinished(self) -> list[SagaResult]:
        """Resume every unfinished saga no run of this process holds and whose wait is
        over; return what each resumed run did."""
        results = []
        for listed in self._log.unfinished():
            with self._lock:
                due, wait = self._next_try.get(listed.saga_id, (0.0, FIRST_WAIT_S / 2))
            if listed.name != self._saga.name or due > time.monotonic():
                continue
            if not self._saga.claim(listed.saga_id):
                continue  # a request (or another resume) is running it now
            try:
                # Read it again now that it is claimed: a run may have finished it meanwhile.
                record = self._log.get(listed.saga_id)
                if record is None or record.finished:
                    continue
                result = self._saga.resume(record)
            except Exception:  # a bug in one saga must not stop the others being resumed
                _log.exception("resuming saga %s failed", listed.saga_id)
                result = SagaResult(listed.saga_id, PENDING)
            finally:
                self._saga.release(listed.saga_id)
            with self._lock:
                if result.outcome == PENDING:
                    wait = min(wait * 2, RESUME_BACKOFF_MAX_S)
                    self._next_try[listed.saga_id] = (time.monotonic() + wait, wait)
                else:
                    self._next_try.pop(listed.saga_id, None)
            results.append(result)
        return results

    def start(self, interval_s: float, stop: threading.Event | None = None) -> threading.Thread:
        """Start a daemon thread that resumes unfinished sagas now and every ``interval_s``
        (until ``stop`` is set)."""
        stop = stop or threading.Event()

        def loop() -> None:
            while True:
                try:
                    self.resume_unfinished()
                except Exception:  # the log's database may be busy; try again next time
                    _log.exception("resuming unfinished sagas failed")
                if stop.wait(interval_s):
                    return

        thread = threading.Thread(target=loop, name=f"saga-{self._saga.name}-recovery", daemon=True)
        thread.start()
        return thread
