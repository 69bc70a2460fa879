"""Throttled requests counted apart from errors; rate limits and breaker settings as spans record them.

Revision ID: 0011
Revises: 0010

``edge_stats`` and ``operation_stats`` gain ``throttled_count`` (answered 429). Minutes
written before the upgrade count none: spans are not read again, and a server span that
answered 429 had no error status, so no error count changes meaning. ``operation_stats``
gains the rate limit its spans record (``rate_limit``, ``rate_limit_window_ms``) and
``breaker_calls`` the breaker's ``failure_threshold`` and ``reset_timeout_ms``; old rows
have none (NULL: not recorded).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COLUMNS = {
    "edge_stats": [sa.Column("throttled_count", sa.BigInteger, nullable=False, server_default="0")],
    "operation_stats": [
        sa.Column("throttled_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rate_limit", sa.BigInteger, nullable=True),
        sa.Column("rate_limit_window_ms", sa.BigInteger, nullable=True),
    ],
    "breaker_calls": [
        sa.Column("failure_threshold", sa.BigInteger, nullable=True),
        sa.Column("reset_timeout_ms", sa.BigInteger, nullable=True),
    ],
}


def upgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(column)


def downgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
