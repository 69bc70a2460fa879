"""503 with Retry-After, on a real `spyglass serve`: when every ingest slot is taken, and
when the store cannot commit because another process holds the lock it needs.

The lock is real: an SQLite write transaction (BEGIN IMMEDIATE) on the server's database
file, or an exclusive lock on PostgreSQL's spans table, taken by a connection of the test.
The database URL bounds how long the server's write waits for it (``?timeout=`` for
SQLite, ``lock_timeout`` for PostgreSQL), as a deployment would.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests
import sqlalchemy as sa

from tests.helpers import ServeProcess, json_request, wait_until

JSON = {"Content-Type": "application/json"}
T0 = 1_700_000_000_000_000_000


def _batch(trace_id: str) -> bytes:
    span = {"trace_id": trace_id, "span_id": "bb" * 8, "name": "op", "start": T0, "end": T0 + 1000}
    return json_request([{"service": "overload", "spans": [span]}])


def _waiting_at_most(database_url: str, seconds: float) -> str:
    """``database_url`` with a bound on how long a statement waits for another's lock."""
    if database_url.startswith("sqlite"):
        return f"{database_url}?timeout={seconds}"
    return f"{database_url}%20-clock_timeout%3D{int(seconds * 1000)}"


@contextmanager
def _store_locked(database_url: str) -> Iterator[None]:
    """Hold, from another connection, the lock a batch write needs, until the block ends."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(sa.engine.make_url(database_url).database, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("LOCK TABLE span_fragments IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


def _post(server: ServeProcess, body: bytes) -> requests.Response:
    return requests.post(f"{server.otlp}/v1/traces", data=body, headers=JSON, timeout=60)


def _stored(server: ServeProcess, trace_id: str) -> bool:
    return requests.get(f"{server.ui}/api/traces/{trace_id}", timeout=10).status_code == 200


def test_a_saturated_collector_answers_503_with_retry_after(tmp_path: Path) -> None:
    # One ingest slot; the request that takes it waits on a lock for up to 20 s, so the
    # other one finds no slot within the receiver's 2 s and is refused. The slots are the
    # receiver's, the same over either backend: SQLite holds the first request here.
    database_url = f"sqlite:///{tmp_path / 'spans.db'}"
    server = ServeProcess(
        tmp_path / "data",
        "--workers",
        "1",
        "--max-inflight",
        "1",
        "--database-url",
        _waiting_at_most(database_url, 20),
    )
    try:
        with ThreadPoolExecutor(2) as pool:
            with _store_locked(database_url):
                first = pool.submit(_post, server, _batch("a1" * 16))
                second = pool.submit(_post, server, _batch("a2" * 16))
                refused = wait_until(
                    lambda: next((f for f in (first, second) if f.done()), None),
                    timeout=15,
                    message=lambda: f"one request to be refused\n{server.output()}",
                )
                answer = refused.result()
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] == "1"
                assert json.loads(answer.content) == {"code": 14, "message": "collector is busy, retry later"}
            # The lock is gone: the request that held the slot commits and is acknowledged.
            admitted = (second if refused is first else first).result()
        assert admitted.status_code == 200, admitted.text
        trace_ids = ["a1" * 16, "a2" * 16] if refused is second else ["a2" * 16, "a1" * 16]
        assert _stored(server, trace_ids[0]) and not _stored(server, trace_ids[1])
    finally:
        server.stop()


def test_a_store_that_cannot_commit_answers_503_with_retry_after(tmp_path: Path, database_url: str) -> None:
    server = ServeProcess(tmp_path / "data", "--database-url", _waiting_at_most(database_url, 1))
    try:
        with _store_locked(database_url):
            answer = _post(server, _batch("c1" * 16))
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "5"
            assert json.loads(answer.content) == {
                "code": 14,
                "message": "the store cannot commit right now, retry later",
            }
        assert not _stored(server, "c1" * 16)
        # Retried once the lock is released, as Retry-After invites, the batch is stored.
        assert _post(server, _batch("c1" * 16)).status_code == 200
        assert _stored(server, "c1" * 16)
    finally:
        server.stop()
