"""Row ids of resources and attribute keys, which spans refer to instead of repeating them.

Both tables only grow, so each process keeps what it has read or written in memory: a
batch's resources and keys usually cost no statement at all.
"""

from __future__ import annotations

import threading
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.model import Resource, Span
from collectors.store import rows
from collectors.store.bulk import insert_ignoring_duplicates
from collectors.store.database import Database
from collectors.store.schema import attribute_keys, resources

_KEY_CHUNK = 500


class Catalog:
    """This process's view of the ``resources`` and ``attribute_keys`` tables.

    Shared by the writer (which adds what a batch brings) and the readers (which turn key
    ids back into names). Safe to share between threads.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._resource_ids: dict[str, int] = {}
        self._key_ids: dict[str, int] = {}
        self._key_names: dict[int, str] = {}
        self._resources: dict[int, Resource] = {}

    def resolve(self, batch: list[Span]) -> tuple[dict[int, int], dict[str, int]]:
        """Row ids of the batch's resources (by id() of the Resource) and attribute keys.

        Served from this process's memory; only resources or keys never seen before cost
        a (short, separate) write transaction, which adds them. The memory learns new ids
        only once they are committed: ids of a transaction that rolls back (a deadlock, a
        lost connection) never existed.
        """
        digests: dict[int, str] = {}
        by_digest: dict[str, Resource] = {}
        for s in batch:
            if id(s.resource) not in digests:
                digest = digests[id(s.resource)] = rows.resource_hash(s.resource)
                by_digest[digest] = s.resource
        keys: set[str] = set()
        for s in batch:
            keys.update(s.attributes)
        new_resources = {d: r for d, r in by_digest.items() if d not in self._resource_ids}
        new_keys = sorted(keys - self._key_ids.keys())
        if new_resources or new_keys:
            with self._database.write() as conn:
                resource_ids = self._insert_resources(conn, new_resources)
                key_ids = _insert_keys(conn, new_keys)
            with self._lock:
                self._resource_ids.update(resource_ids)
                self._key_ids.update(key_ids)
                self._key_names.update({v: k for k, v in key_ids.items()})
        return {rid: self._resource_ids[d] for rid, d in digests.items()}, self._key_ids

    def key_names(self, conn: Connection, wanted: set[int]) -> dict[int, str]:
        """Attribute-key names by id, covering ``wanted``: an id this process has not seen
        (written by another process) makes it read the ``attribute_keys`` table again."""
        names = self._key_names
        if not wanted <= names.keys():
            found = conn.execute(sa.select(attribute_keys.c.id, attribute_keys.c.key)).all()
            with self._lock:
                self._key_names.update({r.id: r.key for r in found})
        return self._key_names

    def resources(self, conn: Connection, wanted: set[int]) -> dict[int, Resource]:
        """Resources by row id, covering ``wanted`` (read once per process: rows never change)."""
        missing = wanted - self._resources.keys()
        if missing:
            found = conn.execute(sa.select(resources).where(resources.c.id.in_(missing))).all()
            with self._lock:
                self._resources.update({r.id: rows.resource_from_row(r) for r in found})
        return self._resources

    def _insert_resources(self, conn: Connection, new: dict[str, Resource]) -> dict[str, int]:
        """Row ids of resources (by digest), inserting those not stored yet, in digest order."""
        out: dict[str, int] = {}
        for digest in sorted(new):
            conn.execute(
                self._database.insert(resources).on_conflict_do_nothing(index_elements=["hash"]),
                rows.resource_row(new[digest], digest),
            )
            out[digest] = conn.execute(sa.select(resources.c.id).where(resources.c.hash == digest)).scalar_one()
        return out


def _insert_keys(conn: Connection, keys: list[str]) -> dict[str, int]:
    """Row ids of span-attribute keys (sorted), inserting those not stored yet."""
    if not keys:
        return {}
    insert_ignoring_duplicates(conn, attribute_keys, ("key",), [(k,) for k in keys])
    found = {}
    for i in range(0, len(keys), _KEY_CHUNK):
        stmt = sa.select(attribute_keys.c.key, attribute_keys.c.id).where(
            attribute_keys.c.key.in_(keys[i : i + _KEY_CHUNK])
        )
        found.update({r.key: r.id for r in conn.execute(stmt)})
    return found
