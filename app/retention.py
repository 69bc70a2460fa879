"""Background retention: prune old traces and cap the span count without blocking ingest."""

from __future__ import annotations

import logging
import threading
import time

from collectors.store import SpanStore, StoreError

log = logging.getLogger(__name__)


class Pruner:
    """A daemon thread that runs :meth:`SpanStore.prune` every ``interval_s`` seconds.

    Deletes in small transactions, so a pass never holds the write lock for long. (The
    store's own background thread keeps SQLite's write-ahead log in bounds.)
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
