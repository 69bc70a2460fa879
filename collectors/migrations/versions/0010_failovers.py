"""Fail-overs: one row per ``discovery.failover`` span event, kept at ingest for the overview.

Revision ID: 0010
Revises: 0009

Events stored before the upgrade are not read again: the table starts empty.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failovers",
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sa.Column("span_id", sa.LargeBinary(8), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("instance_id", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("time_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_failovers_time_ns", "failovers", ["time_ns"])


def downgrade() -> None:
    op.drop_index("ix_failovers_time_ns", "failovers")
    op.drop_table("failovers")
