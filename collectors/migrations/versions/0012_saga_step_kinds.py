"""Saga steps keep their kind (``saga.step.kind``: compensatable, pivot or retriable).

Revision ID: 0012
Revises: 0011

``saga_steps`` gains ``kind``. Steps stored before the upgrade have none (NULL), which the
saga checks read as compensatable, as a span without the attribute is.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("saga_steps") as batch:
        batch.add_column(sa.Column("kind", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("saga_steps") as batch:
        batch.drop_column("kind")
