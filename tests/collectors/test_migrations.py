"""The schema is versioned: migrations build exactly the declared tables, and upgrade old stores."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from collectors.store import SpanStore
from collectors.store.migrate import current_revision, head_revision, upgrade
from collectors.store.schema import metadata


def test_migrations_match_the_declared_schema(store: SpanStore):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_an_empty_database_is_upgraded_on_open_and_reopening_is_a_no_op(database_url: str):
    engine = sa.create_engine(database_url)
    assert current_revision(engine) is None
    engine.dispose()
    SpanStore.from_url(database_url).close()
    store = SpanStore.from_url(database_url)
    assert current_revision(store.engine) == head_revision()
    upgrade(store.engine)
    assert current_revision(store.engine) == head_revision()
    store.close()
