"""Fail-overs name the service called and the instance tried next.

Revision ID: 0013
Revises: 0012

``failovers`` gains ``callee`` (the ``peer.service`` of the call that failed over) and
``next_instance_id`` (the event's ``discovery.next_instance.id``), so that the registry
page can say which call left which instance for which. Rows written before the upgrade
have neither (empty text): spans are not read again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_COLUMNS = [
    sa.Column("callee", sa.Text, nullable=False, server_default=""),
    sa.Column("next_instance_id", sa.Text, nullable=False, server_default=""),
]


def upgrade() -> None:
    with op.batch_alter_table("failovers") as batch:
        for column in _COLUMNS:
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("failovers") as batch:
        for column in _COLUMNS:
            batch.drop_column(column.name)
