"""One edge aggregate: ``edges`` goes, ``edge_stats`` (which the same pairs fed) stays.

Revision ID: 0009
Revises: 0008

``edges`` held per-minute calls of parent/child pairs without a mode or histogram;
``edge_stats`` holds the same calls (mode sync or async) plus the peers spans name. A
minute that only ``edges`` has (written before revision 0002 added ``edge_stats``) is
carried over as synchronous calls with an empty histogram, so the dependencies of old
stores keep their figures. The downgrade rebuilds ``edges`` from ``edge_stats``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_PAIRED_MODES = "(0, 1)"  # sync and async; the other modes are peers named by attributes


def upgrade() -> None:
    op.execute(
        "INSERT INTO edge_stats (parent, child, mode, bucket_ns, call_count, error_count, duration_sum_ns, "
        "duration_max_ns) "
        "SELECT e.parent, e.child, 0, e.bucket_ns, e.call_count, e.error_count, e.duration_sum_ns, e.duration_max_ns "
        "FROM edges e WHERE NOT EXISTS (SELECT 1 FROM edge_stats s WHERE s.parent = e.parent "
        f"AND s.child = e.child AND s.bucket_ns = e.bucket_ns AND s.mode IN {_PAIRED_MODES})"
    )
    op.drop_table("edges")


def downgrade() -> None:
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
    op.execute(
        "INSERT INTO edges (parent, child, bucket_ns, call_count, error_count, duration_sum_ns, duration_max_ns) "
        "SELECT parent, child, bucket_ns, SUM(call_count), SUM(error_count), SUM(duration_sum_ns), "
        f"MAX(duration_max_ns) FROM edge_stats WHERE mode IN {_PAIRED_MODES} GROUP BY parent, child, bucket_ns"
    )
