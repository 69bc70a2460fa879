"""The tag index as one row of packed value hashes per trace fragment, in the main database.

Revision ID: 0005
Revises: 0004

Replaces the (bucket, hash, trace) index, its staging table and the separate
``<name>-tags.db`` file that SQLite stores kept it in (the store deletes that file when it
opens an upgraded database). The new index is rebuilt from the stored spans, one trace at
a time, so every stored trace stays searchable by its attributes.
"""

import itertools
import json
import sys

import sqlalchemy as sa
from alembic import op

from collectors.store.tag_index import packed_hashes

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 2000
_PROGRESS_EVERY = 100_000


def upgrade() -> None:
    trace_tags = op.create_table(
        "trace_tags",
        sa.Column("start_ns", sa.BigInteger, primary_key=True),
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.drop_table("attribute_staging")
    op.drop_table("attribute_buckets")
    op.drop_table("trace_attributes")
    _rebuild(op.get_bind(), trace_tags)


def _rebuild(conn: sa.Connection, trace_tags: sa.Table) -> None:
    keys = {r.id: r.key for r in conn.execute(sa.text("SELECT id, key FROM attribute_keys"))}
    resources = {r.id: json.loads(r.attributes) for r in conn.execute(sa.text("SELECT id, attributes FROM resources"))}
    rows = conn.execute(
        sa.text("SELECT trace_id, start_ns, resource_id, attributes FROM spans ORDER BY trace_id")
    ).yield_per(_BATCH)
    out: list[dict] = []
    current, start, maps, seen = None, 0, [], set()
    done = 0
    for r in itertools.chain(rows, [None]):
        if r is None or r.trace_id != current:
            if current is not None:
                out.append({"start_ns": start, "trace_id": current, "hashes": packed_hashes(maps)})
                if len(out) >= _BATCH or r is None:
                    conn.execute(sa.insert(trace_tags), out)
                    done += len(out)
                    out = []
                    if done % _PROGRESS_EVERY < _BATCH or r is None:
                        print(f"migration 0005: tag index rebuilt for {done:,} traces", file=sys.stderr, flush=True)
            if r is None:
                break
            current, start, maps, seen = r.trace_id, r.start_ns, [], set()
        start = min(start, r.start_ns)
        maps.append(_attributes(r.attributes, keys))
        if r.resource_id not in seen:
            seen.add(r.resource_id)
            maps.append(resources.get(r.resource_id, {}))


def _attributes(text: str | None, keys: dict[int, str]) -> dict:
    if not text:
        return {}
    doc = json.loads(text)
    if isinstance(doc, dict):
        return doc
    return {keys[doc[i]]: doc[i + 1] for i in range(0, len(doc), 2)}


def downgrade() -> None:
    raise NotImplementedError("the tag index cannot be moved back into its old form; restore a backup instead")
