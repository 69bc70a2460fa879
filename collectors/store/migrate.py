"""Schema versioning: upgrade a database to the newest schema with Alembic.

The migration scripts live in ``collectors/migrations``; each release that changes the
schema adds one, so a newer Spyglass opens an older data directory and upgrades it.

Several servers may open one database at once (replicas started together): each upgrade
holds a lock while it reads the revision and migrates, so one server upgrades and the
others wait for it, then read the new revision and have nothing left to do.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
UPGRADE_LOCK = 0x53505947
"""PostgreSQL advisory lock (with the schema's hash as second key) held while upgrading."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision`` (the newest by default).

    Alembic reads the revision and migrates under a lock that other servers opening the
    same database also take (PostgreSQL: an advisory lock per schema; SQLite: the lock
    file beside the database, then BEGIN IMMEDIATE), so they migrate one after another.
    """
    if revision == "head" and current_revision(engine) == head_revision():
        return  # the common case, and no lock to wait for
    config = _config()
    with sqlite_file_lock(engine), engine.connect() as conn, _postgres_lock(conn):
        # On SQLite, BEGIN IMMEDIATE: the write lock before Alembic reads the revision.
        conn = conn.execution_options(spyglass_write=True)
        with conn.begin():
            config.attributes["connection"] = conn
            command.upgrade(config, revision)


@contextmanager
def sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Hold the lock file beside an SQLite database, the one its writers queue on.

    It has no time limit, unlike SQLite's own lock: a server opening the database while
    another upgrades a large store waits however long the upgrade takes.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        yield
        return
    with open(f"{database}.writelock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


@contextmanager
def _postgres_lock(conn: Connection) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock on the schema in use, outside the upgrade's
    transaction, so the upgrade reads the revision after whoever held it committed."""
    if conn.dialect.name != "postgresql":
        yield
        return
    key = sa.text("hashtext(coalesce(current_schema(), ''))")
    conn.execute(sa.select(sa.func.pg_advisory_lock(UPGRADE_LOCK, key)))
    conn.commit()
    try:
        yield
    finally:
        if not conn.invalidated:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(UPGRADE_LOCK, key)))
            conn.commit()


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest schema revision this release knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head
