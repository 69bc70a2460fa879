"""Consumer spans waiting for their producer, so that a producer arriving after its
consumer still makes the async edge.

Revision ID: 0006
Revises: 0005

Starts empty: consumers stored before the upgrade whose producer has not arrived yet are
not paired (finding them would mean reading every stored consumer span's links).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unpaired_consumers",
        sa.Column("producer_span_id", sa.LargeBinary(8), primary_key=True),
        sa.Column("producer_trace_id", sa.LargeBinary(16), primary_key=True),
        sa.Column("consumer_trace_id", sa.LargeBinary(16), primary_key=True),
        sa.Column("consumer_span_id", sa.LargeBinary(8), primary_key=True),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("duration_ns", sa.BigInteger, nullable=False),
        sa.Column("failed", sa.SmallInteger, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("unpaired_consumers")
