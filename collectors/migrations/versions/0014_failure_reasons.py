"""Why a trace failed, kept in its summary: the deepest error span, its service and reason.

Revision ID: 0014
Revises: 0013

Traces stored before the upgrade have none (NULL): their lists say the reason is unknown
until another span of the trace arrives, when the writer judges the trace's spans again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_COLUMNS = (
    sa.Column("failure_span_id", sa.LargeBinary(8), nullable=True),
    sa.Column("failure_service", sa.Text, nullable=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("trace_summaries") as batch:
        for column in _COLUMNS:
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("trace_summaries") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column.name)
