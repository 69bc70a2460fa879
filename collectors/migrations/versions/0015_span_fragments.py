"""Spans kept per trace fragment, compressed, instead of a row per span.

Revision ID: 0015
Revises: 0014

Every stored trace's span rows become one fragment (collectors/store/fragments.py),
compressed with zstd and a dictionary trained on the first fragments converted; then the
``spans`` table is dropped. The tag index is rebuilt at the same time, a row per trace,
with the 3-byte hashes this release packs (the rows before held 4-byte ones) and the
trace's services among them, which replaces the ``trace_services`` index. The conversion
walks the spans in trace order and prints its progress; a store of 10 million spans takes
a few minutes.
"""

import sys
import time

import sqlalchemy as sa
import zstandard
from alembic import op

from collectors.store.compression import DICTIONARY_BYTES, LEVEL, NO_DICTIONARY, SAMPLE_FRAGMENTS, SAMPLE_MIN_BYTES
from collectors.store.fragments import encode_with_columns
from collectors.store.tag_index import packed_column_hashes
from collectors.store.rows import decode_attributes, resource_from_row, span_from_row

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_READ_BATCH = 5000
_WRITE_BATCH = 500
_PROGRESS_EVERY_S = 2.0


def upgrade() -> None:
    fragments = op.create_table(
        "span_fragments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("trace_id", sa.LargeBinary(16), nullable=False),
        sa.Column("span_count", sa.Integer, nullable=False),
        sa.Column("dictionary_id", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_span_fragments_trace_id", "span_fragments", ["trace_id"])
    dictionaries = op.create_table(
        "zstd_dictionaries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.execute("DELETE FROM trace_tags")
    _Conversion(op.get_bind(), fragments, dictionaries).run()
    op.drop_table("spans")
    op.drop_table("trace_services")  # the tag index finds traces by service now


class _Conversion:
    """Reads the span rows in trace order and writes one fragment per trace."""

    def __init__(self, conn: sa.Connection, fragments: sa.Table, dictionaries: sa.Table) -> None:
        self.conn = conn
        self.fragments = fragments
        self.dictionaries = dictionaries
        self.key_names = {r.id: r.key for r in conn.execute(sa.text("SELECT id, key FROM attribute_keys"))}
        self.key_ids = {name: key_id for key_id, name in self.key_names.items()}
        self.resources = {r.id: resource_from_row(r) for r in conn.execute(sa.text("SELECT * FROM resources"))}
        self.resource_ids = {id(resource): rid for rid, resource in self.resources.items()}
        self.total = conn.execute(sa.text("SELECT count(*) FROM spans")).scalar_one()
        self.pending: list[tuple[bytes, int, bytes]] = []  # trace id, span count, encoded text
        self.tags: list[dict] = []
        self.trace_tags = sa.table(
            "trace_tags", sa.column("start_ns"), sa.column("trace_id"), sa.column("hashes", sa.LargeBinary)
        )
        self.dictionary_id = NO_DICTIONARY
        self.compressor = zstandard.ZstdCompressor(level=LEVEL)
        self.trained = False
        self.done = 0
        self.last_report = 0.0

    def run(self) -> None:
        if not self.total:
            return
        self._report(force=True)
        rows = self.conn.execute(sa.text("SELECT * FROM spans ORDER BY trace_id")).yield_per(_READ_BATCH)
        current: bytes | None = None
        group: list = []
        for r in rows:
            if r.trace_id != current:
                if group:
                    self._add(current, group)
                current, group = r.trace_id, []
            attributes = decode_attributes(r.attributes, self.key_names)
            group.append(span_from_row(r, self.resources[r.resource_id], attributes))
        if group:
            self._add(current, group)
        self._flush()
        self._report(force=True)

    def _add(self, trace_id: bytes, spans: list) -> None:
        for key in (k for s in spans for k in s.attributes if k not in self.key_ids):
            self.key_ids[key] = self._new_key(key)  # a key of a row stored before keys had ids
        text, columns = encode_with_columns(spans, self.resource_ids, self.key_ids)
        self.pending.append((trace_id, len(spans), text))
        hashes = packed_column_hashes(columns, {id(s.resource): s.resource for s in spans}.values())
        if hashes:
            self.tags.append({"start_ns": min(s.start_ns for s in spans), "trace_id": trace_id, "hashes": hashes})
        self.done += len(spans)
        if len(self.pending) >= (SAMPLE_FRAGMENTS if not self.trained else _WRITE_BATCH):
            self._flush()
        self._report()

    def _new_key(self, key: str) -> int:
        self.conn.execute(sa.text("INSERT INTO attribute_keys (key) VALUES (:k)"), {"k": key})
        return self.conn.execute(sa.text("SELECT id FROM attribute_keys WHERE key = :k"), {"k": key}).scalar_one()

    def _flush(self) -> None:
        if not self.trained:
            self.trained = True
            sample = [text for _, _, text in self.pending]
            if len(sample) >= 100 and sum(map(len, sample)) >= SAMPLE_MIN_BYTES // 4:
                data = zstandard.train_dictionary(DICTIONARY_BYTES, sample, level=LEVEL).as_bytes()
                self.conn.execute(sa.insert(self.dictionaries).values(created_ns=time.time_ns(), data=data))
                self.dictionary_id = self.conn.execute(sa.select(sa.func.max(self.dictionaries.c.id))).scalar_one()
                self.compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=zstandard.ZstdCompressionDict(data))
        if self.pending:
            self.conn.execute(
                sa.insert(self.fragments),
                [
                    {
                        "trace_id": trace_id,
                        "span_count": count,
                        "dictionary_id": self.dictionary_id,
                        "data": self.compressor.compress(text),
                    }
                    for trace_id, count, text in self.pending
                ],
            )
            self.pending = []
        if self.tags:
            self.conn.execute(sa.insert(self.trace_tags), self.tags)
            self.tags = []

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_report >= _PROGRESS_EVERY_S:
            self.last_report = now
            share = self.done / self.total if self.total else 1
            print(
                f"migration 0015: {self.done:,} of {self.total:,} spans kept as compressed trace fragments ({share:.0%})",
                file=sys.stderr,
                flush=True,
            )


def downgrade() -> None:
    raise NotImplementedError("trace fragments cannot be moved back to a row per span; restore a backup instead")
