"""Chaos experiments: each run of a scenario or manual fault change, with its verdict.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scenario", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("hypothesis", sa.Text, nullable=False),
        sa.Column("verdict", sa.Text, nullable=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("started_ns", sa.BigInteger, nullable=False),
        sa.Column("finished_ns", sa.BigInteger, nullable=True),
        sa.Column("changes", sa.Text, nullable=False),
        sa.Column("checks", sa.Text, nullable=False),
        sa.Column("trace_ids", sa.Text, nullable=False),
        sa.Column("findings", sa.Text, nullable=False),
    )
    op.create_index("experiments_started", "experiments", ["started_ns"])


def downgrade() -> None:
    op.drop_index("experiments_started", "experiments")
    op.drop_table("experiments")
