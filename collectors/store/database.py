"""The database under the store: engines, write transactions, SQLite's log checkpoints,
and the differences between SQLite and PostgreSQL.

:class:`Database` is the one collaborator every other part of the store is given: the
writer and retention take their transactions from :meth:`Database.write`, the readers
their connections from :meth:`Database.connect`.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from collectors.store.contracts import StoreError, first_line

SQLITE_PAGE_SIZE = 8192
SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long an SQLite statement waits for another process's lock, unless the URL says
(``sqlite:///path?timeout=5``); past it, a write is refused (the receiver answers 503)."""
CHECKPOINT_INTERVAL_S = 2.0
WRITER_CACHE_MIB = 64
READER_CACHE_MIB = 8
"""SQLite page cache per connection: the server's memory grows with the reader count."""
WAL_TRUNCATE_BYTES = 32 * 1024 * 1024
"""SQLite's write-ahead log is truncated when it is found larger than this."""

log = logging.getLogger(__name__)


class Database:
    """One SQLite file or PostgreSQL database: connections to read, transactions to write.

    Safe to share between threads. Several processes may write to the same SQLite file:
    each write transaction takes SQLite's write lock up front (BEGIN IMMEDIATE), so the
    read-then-write of a batch is never interleaved with another writer.
    """

    def __init__(self, engine: Engine, *, background_checkpoints: bool = True) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.background_checkpoints = background_checkpoints
        self._write_mutex = threading.Lock()
        self._lock_file = None
        self._write_engine = engine
        if self.dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._lock_file = open(f"{engine.url.database}.writelock", "a")  # noqa: SIM115 (held for the store's life)
            # Writers get connections of their own with a large page cache (the upper levels
            # of every index a batch touches); readers, many at a time, a small one each.
            self._write_engine = create_engine(
                engine.url.render_as_string(hide_password=False), cache_mib=WRITER_CACHE_MIB, pool_size=2
            )
        self._checkpoint_lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, background_checkpoints: bool = True) -> Database:
        """Connect to ``url`` and (by default) create or upgrade its schema.

        Raises StoreError with a one-line reason when the database cannot be reached.
        """
        from collectors.store.migrate import sqlite_file_lock, upgrade

        engine = create_engine(url)
        try:
            # The first connection to a new SQLite file turns on its write-ahead log, which
            # SQLite refuses at once (no busy wait) while another server opening the same
            # file holds it to upgrade the schema: take the lock such servers hold.
            with sqlite_file_lock(engine), engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            if migrate:
                upgrade(engine)
                remove_old_tag_database(engine)
            return cls(engine, background_checkpoints=background_checkpoints)
        except sa.exc.SQLAlchemyError as err:
            engine.dispose()
            raise StoreError(f"cannot open the store at {safe_url(url)}: {first_line(err)}") from err

    def connect(self) -> AbstractContextManager[Connection]:
        """A connection for reading (SQLite readers never wait for the writer)."""
        return self.engine.connect()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: SQLite's write lock is taken at BEGIN, not at first write.

        On SQLite, writers first queue on a thread lock and a lock file beside the
        database: SQLite's own busy handler polls with sleeps of up to 100 ms, which under
        contention leaves the database idle and ingest latency high; a blocking lock hands
        over at once, to threads of this process and to other processes alike. Commits
        when the block ends; rolls back and re-raises when it raises.
        """
        with self._writer_turn(), self._write_engine.connect() as conn:
            conn = conn.execution_options(spyglass_write=True)
            with conn.begin():
                yield conn

    def insert(self, table: sa.Table) -> Any:
        """An INSERT of the dialect in use (both have ``on_conflict_do_*``)."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def least_greatest(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """SQL functions for the smaller and the larger of two values."""
        if self.dialect == "postgresql":
            return sa.func.least, sa.func.greatest
        return sa.func.min, sa.func.max

    def start_checkpoints(self) -> None:
        """Start the checkpoint thread, once, if this database keeps its own log in bounds
        (``background_checkpoints``). Called by the writer after a write."""
        if self._checkpointer is not None or not self.background_checkpoints:
            return
        with self._checkpoint_lock:
            if self._checkpointer is None and not self._closing.is_set():
                self._checkpointer = threading.Thread(
                    target=self.checkpoint_forever, args=(self._closing,), name="spyglass-checkpoints", daemon=True
                )
                self._checkpointer.start()

    def checkpoint_forever(self, stop: threading.Event) -> None:
        """Checkpoint SQLite's log every few seconds until ``stop`` is set. Errors are
        logged and retried. On PostgreSQL, only waits for ``stop``."""
        if self.dialect != "sqlite":
            stop.wait()
            return
        while not stop.wait(CHECKPOINT_INTERVAL_S):
            try:
                self.checkpoint(truncate_above=WAL_TRUNCATE_BYTES)
            except StoreError as err:
                log.warning("%s; retrying", err)

    def checkpoint(self, truncate_above: int = 0) -> None:
        """Fold SQLite's write-ahead log back into the database.

        A passive checkpoint never waits for writers; when the log file is still larger
        than ``truncate_above`` bytes afterwards, a TRUNCATE checkpoint (which briefly
        waits for the writer) shrinks it, so several writers cannot grow it without bound.
        Raises StoreError when the database refuses. Does nothing on PostgreSQL.
        """
        if self.dialect != "sqlite":
            return
        database = Path(self.engine.url.database or "")
        wal = database.with_name(database.name + "-wal")
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                if wal.exists() and wal.stat().st_size > truncate_above:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except sa.exc.SQLAlchemyError as err:
            raise StoreError(f"could not checkpoint the write-ahead log: {first_line(err)}") from err

    def close(self) -> None:
        """Stop the checkpoint thread and release the connections."""
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
        self.engine.dispose()
        if self._write_engine is not self.engine:
            self._write_engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        if self._lock_file is None:
            yield
            return
        with self._write_mutex:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)


def create_engine(url: str, *, cache_mib: int = READER_CACHE_MIB, pool_size: int = 8) -> Engine:
    """An engine for ``url``; on SQLite with WAL, 8 KiB pages on new files, ``cache_mib`` of
    page cache per connection, and write transactions that BEGIN IMMEDIATE."""
    if url.startswith("sqlite"):
        connect_args: dict[str, Any] = {"check_same_thread": False}
        if "timeout" not in sa.engine.make_url(url).query:
            # An explicit connect argument would override the URL's ?timeout=.
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
        engine = sa.create_engine(url, connect_args=connect_args, pool_size=pool_size, max_overflow=16)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so writes can BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # Takes effect only on a new database file (existing ones keep theirs): 8 KiB
            # pages made batch writes about 10 % faster than 4 KiB, for 3 % more disk.
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA journal_size_limit=67108864")
            cur.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("spyglass_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return sa.create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)


def remove_old_tag_database(engine: Engine) -> None:
    """Delete the tag index file that releases before revision 0005 kept beside a SQLite
    database (``<name>-tags.db``); the migration rebuilt the index inside the database."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    database = Path(engine.url.database)
    old = database.with_name(database.stem + "-tags.db")
    for path in (old, old.with_name(old.name + "-wal"), old.with_name(old.name + "-shm")):
        if path.exists():
            log.info("removing %s: the tag index now lives in %s", path, database.name)
            path.unlink(missing_ok=True)  # another server opening the store may be first


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"
