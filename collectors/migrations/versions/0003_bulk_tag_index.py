"""The tag index keyed by time bucket first, filled in bulk from a staging table.

Revision ID: 0003
Revises: 0002

Existing index rows are carried over (their start time becomes a 10-second bucket).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BUCKET_NS = 10_000_000_000


def upgrade() -> None:
    op.rename_table("trace_attributes", "trace_attributes_0002")
    op.create_table(
        "trace_attributes",
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("hash", sa.BigInteger, primary_key=True),
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "attribute_buckets",
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "attribute_staging",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.execute(
        "INSERT INTO trace_attributes (bucket, hash, trace_id) "
        f"SELECT DISTINCT start_ns / {BUCKET_NS}, hash, trace_id FROM trace_attributes_0002"
    )
    op.execute("INSERT INTO attribute_buckets (bucket) SELECT DISTINCT bucket FROM trace_attributes")
    op.drop_table("trace_attributes_0002")


def downgrade() -> None:
    op.drop_table("attribute_staging")
    op.drop_table("attribute_buckets")
    op.rename_table("trace_attributes", "trace_attributes_0003")
    op.create_table(
        "trace_attributes",
        sa.Column("hash", sa.BigInteger, primary_key=True),
        sa.Column("start_ns", sa.BigInteger, primary_key=True),
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO trace_attributes (hash, start_ns, trace_id) "
        f"SELECT hash, bucket * {BUCKET_NS}, trace_id FROM trace_attributes_0003"
    )
    op.drop_table("trace_attributes_0003")
