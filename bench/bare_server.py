"""The bare receiver, a baseline for bench/ingest.py: the same receiver, gunicorn set-up and
OTLP decoding as `spyglass serve`, with the simplest store that keeps spans: one row per
span in an SQLite table keyed on (trace_id, span_id), in WAL mode with synchronous=NORMAL,
one transaction per batch, INSERT OR IGNORE, no other index. Workers share the file and
wait for its write lock (busy timeout). Run by the benchmark, not by hand:

    python bench/bare_server.py OTLP_ADDR UI_ADDR WORKERS DB_PATH

The table is an ordinary rowid table, not WITHOUT ROWID. Its primary key is then a
separate index of small entries (the two ids and the rowid) taking the random inserts of
random trace ids, while the rows themselves, some 450 bytes with their attributes'
JSON, are appended in rowid order. Clustered on the key instead, every insert lands at a
random place among the full rows and splits pages of them; SQLite's documentation
advises WITHOUT ROWID only for rows under about a twentieth of a page. Measured on
this workload's rows (batches of 512 spans, 200,000 spans): about 115,000 spans/s and
510 bytes a span as a rowid table, 60,000 spans/s and 600 bytes a span WITHOUT ROWID.
The baseline is the faster of the two plain designs.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.server import GunicornServer, PortDispatcher  # noqa: E402
from app.settings import Settings, split_addr  # noqa: E402
from collectors.model import Span  # noqa: E402
from collectors.store import WriteResult  # noqa: E402

BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    parent_span_id BLOB,
    service_name TEXT NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    status_message TEXT,
    attributes TEXT,
    events TEXT,
    links TEXT,
    PRIMARY KEY (trace_id, span_id)
)
"""

INSERT = "INSERT OR IGNORE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _json(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


def span_row(s: Span) -> tuple:
    """A span's row: ids as bytes, its columns, and attributes, events and links as JSON text."""
    return (
        bytes.fromhex(s.trace_id),
        bytes.fromhex(s.span_id),
        bytes.fromhex(s.parent_span_id) if s.parent_span_id else None,
        s.resource.service_name,
        s.name,
        s.kind,
        s.start_ns,
        s.end_ns,
        s.status_code,
        s.status_message or None,
        _json(s.attributes) if s.attributes else None,
        _json([[e.time_ns, e.name, e.attributes] for e in s.events]) if s.events else None,
        _json([[k.trace_id, k.span_id, k.attributes] for k in s.links]) if s.links else None,
    )


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class BareStore:
    """One row per span, one transaction per batch; a worker's threads take turns."""

    def __init__(self, path: str) -> None:
        self.conn = connect(path)
        self.lock = threading.Lock()

    def write_spans(self, batch: Iterable[Span], received_ns: int | None = None) -> WriteResult:
        rows = [span_row(s) for s in batch]
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                before = self.conn.total_changes
                self.conn.executemany(INSERT, rows)
                inserted = self.conn.total_changes - before
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return WriteResult(inserted, len(rows) - inserted)

    def list_services(self) -> list[str]:
        """Answer the health check."""
        return []


def _loader(path: str) -> Callable[[Settings], Callable]:
    def load(settings: Settings) -> Callable:
        app = create_app(settings, store=BareStore(path))  # type: ignore[arg-type]
        return PortDispatcher(app, split_addr(settings.otlp_http_addr)[1])

    return load


if __name__ == "__main__":
    db_path = sys.argv[4]
    setup = connect(db_path)  # before the workers start, so that they only insert
    setup.execute(SCHEMA)
    setup.close()
    settings = Settings.from_env(otlp_http_addr=sys.argv[1], ui_addr=sys.argv[2], workers=int(sys.argv[3]))
    sys.argv = sys.argv[:1]
    GunicornServer(settings, _loader(db_path)).run()
