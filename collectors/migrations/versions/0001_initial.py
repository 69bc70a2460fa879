"""The first schema: spans, resources, trace summaries, indexes, operations, edges.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hash", sa.String(32), nullable=False, unique=True),
        sa.Column("service_name", sa.Text, nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("scope_name", sa.Text, nullable=False),
        sa.Column("scope_version", sa.Text, nullable=False),
        sa.Column("scope_attributes", sa.Text, nullable=False),
    )
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sa.Column("span_id", sa.LargeBinary(8), primary_key=True),
        sa.Column("parent_span_id", sa.LargeBinary(8), nullable=True),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("duration_ns", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.SmallInteger, nullable=False),
        sa.Column("status_message", sa.Text, nullable=True),
        sa.Column("resource_id", sa.Integer, nullable=False),
        sa.Column("attributes", sa.Text, nullable=True),
        sa.Column("events", sa.Text, nullable=True),
        sa.Column("links", sa.Text, nullable=True),
        sa.Column("extra", sa.Text, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "trace_summaries",
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sa.Column("root_span_id", sa.LargeBinary(8), nullable=True),
        sa.Column("root_service", sa.Text, nullable=False),
        sa.Column("root_name", sa.Text, nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("span_count", sa.Integer, nullable=False),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("services", sa.Text, nullable=False),
        sa.Column("received_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_trace_summaries_start_ns", "trace_summaries", ["start_ns"])
    op.create_index("ix_trace_summaries_received_ns", "trace_summaries", ["received_ns"])
    op.create_table(
        "trace_services",
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("start_ns", sa.BigInteger, primary_key=True),
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "trace_attributes",
        sa.Column("hash", sa.BigInteger, primary_key=True),
        sa.Column("start_ns", sa.BigInteger, primary_key=True),
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "operations",
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("kind", sa.SmallInteger, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "edges",
        sa.Column("parent", sa.Text, primary_key=True),
        sa.Column("child", sa.Text, primary_key=True),
        sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
        sa.Column("call_count", sa.BigInteger, nullable=False),
        sa.Column("error_count", sa.BigInteger, nullable=False),
        sa.Column("duration_sum_ns", sa.BigInteger, nullable=False),
        sa.Column("duration_max_ns", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    for table in ("edges", "operations", "trace_attributes", "trace_services", "trace_summaries", "spans", "resources"):
        op.drop_table(table)
