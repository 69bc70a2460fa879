"""A few trace ids per edge and minute (exemplars), kept at ingest for the edge page.

Revision ID: 0008
Revises: 0007

Rows written before the upgrade start with none: their pairs are not derived again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("edge_stats") as batch:
        batch.add_column(sa.Column("exemplars", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("edge_stats") as batch:
        batch.drop_column("exemplars")
