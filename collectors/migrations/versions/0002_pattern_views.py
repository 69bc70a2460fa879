"""Tables for the pattern views: per-minute edge and operation stats with latency
histograms, instance activity, circuit-breaker calls and transitions, sagas and steps.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Spelled out rather than imported from schema.py: a migration must not change when the
# current schema does.
_HISTOGRAM = [f"h{i:02d}" for i in range(40)]


def _histogram_columns() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _HISTOGRAM]


def upgrade() -> None:
    op.create_table(
        "edge_stats",
        sa.Column("parent", sa.Text, primary_key=True),
        sa.Column("child", sa.Text, primary_key=True),
        sa.Column("mode", sa.SmallInteger, primary_key=True),
        sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
        sa.Column("call_count", sa.BigInteger, nullable=False),
        sa.Column("error_count", sa.BigInteger, nullable=False),
        sa.Column("duration_sum_ns", sa.BigInteger, nullable=False),
        sa.Column("duration_max_ns", sa.BigInteger, nullable=False),
        *_histogram_columns(),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_edge_stats_bucket_ns", "edge_stats", ["bucket_ns"])
    op.create_table(
        "operation_stats",
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
        sa.Column("request_count", sa.BigInteger, nullable=False),
        sa.Column("error_count", sa.BigInteger, nullable=False),
        sa.Column("duration_sum_ns", sa.BigInteger, nullable=False),
        sa.Column("duration_max_ns", sa.BigInteger, nullable=False),
        *_histogram_columns(),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_operation_stats_bucket_ns", "operation_stats", ["bucket_ns"])
    op.create_table(
        "instance_stats",
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("instance_id", sa.Text, primary_key=True),
        sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
        sa.Column("request_count", sa.BigInteger, nullable=False),
        sa.Column("error_count", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_instance_stats_bucket_ns", "instance_stats", ["bucket_ns"])
    op.create_table(
        "breaker_calls",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("caller", sa.Text, primary_key=True),
        sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
        sa.Column("callee", sa.Text, nullable=False),
        sa.Column("call_count", sa.BigInteger, nullable=False),
        sa.Column("failure_count", sa.BigInteger, nullable=False),
        sa.Column("rejected_count", sa.BigInteger, nullable=False),
        sa.Column("last_ns", sa.BigInteger, nullable=False),
        sa.Column("last_state", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_breaker_calls_bucket_ns", "breaker_calls", ["bucket_ns"])
    op.create_table(
        "breaker_transitions",
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sa.Column("span_id", sa.LargeBinary(8), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("caller", sa.Text, nullable=False),
        sa.Column("time_ns", sa.BigInteger, nullable=False),
        sa.Column("from_state", sa.Text, nullable=False),
        sa.Column("to_state", sa.Text, nullable=False),
        sa.Column("failure_count", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_breaker_transitions_name_time", "breaker_transitions", ["name", "time_ns"])
    op.create_index("ix_breaker_transitions_time_ns", "breaker_transitions", ["time_ns"])
    op.create_table(
        "sagas",
        sa.Column("saga_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("trace_id", sa.LargeBinary(16), nullable=False),
        sa.Column("root_span_id", sa.LargeBinary(8), nullable=True),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.Text, nullable=True),
    )
    op.create_index("ix_sagas_start_ns", "sagas", ["start_ns"])
    op.create_index("ix_sagas_outcome_start_ns", "sagas", ["outcome", "start_ns"])
    op.create_table(
        "saga_steps",
        sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
        sa.Column("span_id", sa.LargeBinary(8), primary_key=True),
        sa.Column("saga_id", sa.Text, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=True),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.SmallInteger, nullable=False),
        sa.Column("status_message", sa.Text, nullable=True),
    )
    op.create_index("ix_saga_steps_saga_id", "saga_steps", ["saga_id"])


def downgrade() -> None:
    for table in (
        "saga_steps",
        "sagas",
        "breaker_transitions",
        "breaker_calls",
        "instance_stats",
        "operation_stats",
        "edge_stats",
    ):
        op.drop_table(table)
