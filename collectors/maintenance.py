"""Background maintenance of the store: retention and SQLite log checkpoints.

``spyglass serve`` runs :func:`maintain` in one process of its own beside the gunicorn
workers, so this work runs on another core instead of inside every worker. The module
imports nothing of the web app, which keeps that process small.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from collectors.store import SpanStore, StoreError

log = logging.getLogger(__name__)


class Pruner:
    """A daemon thread that runs :meth:`SpanStore.prune` every ``interval_s`` seconds.

    Deletes in small transactions, so a pass never holds the write lock for long.
    Checkpoints are not its business: :func:`maintain` opens the store without its
    checkpoint thread and runs :meth:`SpanStore.checkpoint_forever` on its main thread.
    """

    def __init__(self, store: SpanStore, *, retention_hours: float, max_spans: int, interval_s: float) -> None:
        self.store = store
        self.retention_hours = retention_hours
        self.max_spans = max_spans
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spyglass-pruner", daemon=True)

    def start(self) -> Pruner:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> None:
        """One retention pass."""
        older_than = None
        if self.retention_hours > 0:
            older_than = time.time_ns() - int(self.retention_hours * 3600e9)
        result = self.store.prune(older_than_ns=older_than, max_spans=self.max_spans or None)
        if result.traces:
            log.info("retention removed %d traces (%d spans)", result.traces, result.spans)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except StoreError as err:
                log.warning("retention pass skipped: %s", err)


def maintain(store_url: str, retention_hours: float, max_spans: int, prune_interval_s: float) -> None:
    """Checkpoint and prune the store at ``store_url`` until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    store = SpanStore.from_url(store_url, migrate=False, background_checkpoints=False)
    pruner = None
    if prune_interval_s > 0 and (retention_hours > 0 or max_spans > 0):
        pruner = Pruner(store, retention_hours=retention_hours, max_spans=max_spans, interval_s=prune_interval_s)
        pruner.start()
    store.checkpoint_forever(stop)
    if pruner is not None:
        pruner.stop()
    store.close()


if __name__ == "__main__":
    # Started by `spyglass serve`, which passes its already validated settings in the
    # environment (a database URL may hold a password, so not on the command line).
    maintain(
        os.environ["SPYGLASS_DATABASE_URL"],
        float(os.environ["SPYGLASS_RETENTION_HOURS"]),
        int(os.environ["SPYGLASS_MAX_SPANS"]),
        float(os.environ["SPYGLASS_PRUNE_INTERVAL_S"]),
    )
