"""Attribute keys stored once: spans refer to them by id.

Revision ID: 0004
Revises: 0003

Rows written before this revision keep their attributes as a JSON object; the reader
accepts both forms, so no span needs rewriting.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attribute_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.Text, nullable=False, unique=True),
    )


def downgrade() -> None:
    # Rows written since the upgrade refer to key ids; a downgrade would orphan them.
    raise NotImplementedError("attribute keys cannot be folded back into span rows")
