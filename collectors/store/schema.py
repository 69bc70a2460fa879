"""The tables of the span store, declared once with SQLAlchemy Core.

Spans are stored per trace fragment (the spans of one trace that arrived in one batch),
encoded and compressed together; trace ids are binary (16 bytes); attribute keys and
resources (resource attributes plus instrumentation scope) are deduplicated into their
own tables so that a fragment refers to them by integer.
The Alembic migrations under ``collectors/migrations`` create exactly these tables;
``tests/collectors/test_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa

from collectors.model import HISTOGRAM_BUCKETS

metadata = sa.MetaData()

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hash", sa.String(32), nullable=False, unique=True),
    sa.Column("service_name", sa.Text, nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("scope_name", sa.Text, nullable=False),
    sa.Column("scope_version", sa.Text, nullable=False),
    sa.Column("scope_attributes", sa.Text, nullable=False),
)

attribute_keys = sa.Table(
    "attribute_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
)

span_fragments = sa.Table(
    "span_fragments",
    metadata,
    # The spans of one trace that arrived in one batch, encoded together
    # (collectors/store/fragments.py) and compressed (collectors/store/compression.py).
    # Rows are appended in arrival order (the integer key), so the table fills its pages;
    # a trace's fragments are found through the trace id index.
    # INTEGER on SQLite, so that it is the rowid; 64 bits on PostgreSQL.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("trace_id", sa.LargeBinary(16), nullable=False),
    sa.Column("span_count", sa.Integer, nullable=False),
    sa.Column("dictionary_id", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_span_fragments_trace_id", "trace_id"),
)

zstd_dictionaries = sa.Table(
    "zstd_dictionaries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

trace_summaries = sa.Table(
    "trace_summaries",
    metadata,
    sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
    sa.Column("root_span_id", sa.LargeBinary(8), nullable=True),
    sa.Column("root_service", sa.Text, nullable=False),
    sa.Column("root_name", sa.Text, nullable=False),
    sa.Column("start_ns", sa.BigInteger, nullable=False),
    sa.Column("end_ns", sa.BigInteger, nullable=False),
    sa.Column("span_count", sa.Integer, nullable=False),
    sa.Column("error_count", sa.Integer, nullable=False),
    sa.Column("services", sa.Text, nullable=False),
    sa.Column("received_ns", sa.BigInteger, nullable=False),
    # The deepest error span (the likely cause of the failure), its service and reason:
    # its status message, else its exception. NULL: no error span, or one stored before
    # reasons were kept.
    sa.Column("failure_span_id", sa.LargeBinary(8), nullable=True),
    sa.Column("failure_service", sa.Text, nullable=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Index("ix_trace_summaries_start_ns", "start_ns"),
    sa.Index("ix_trace_summaries_received_ns", "received_ns"),
)

unpaired_consumers = sa.Table(
    "unpaired_consumers",
    metadata,
    # Consumer spans stored before the producer span they link to: when the producer
    # arrives, its batch counts the async edge and deletes the row. Only such consumers
    # are kept, so the table stays small; retention drops rows older than every trace.
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

trace_tags = sa.Table(
    "trace_tags",
    metadata,
    # One row per trace fragment (a trace's spans in one batch), in start-time order, so a
    # search scans its window's rows in sequence: see collectors/store/tag_index.py.
    sa.Column("start_ns", sa.BigInteger, primary_key=True),
    sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
    sa.Column("hashes", sa.LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

operations = sa.Table(
    "operations",
    metadata,
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("kind", sa.SmallInteger, primary_key=True),
    sqlite_with_rowid=False,
)

# -- pattern views (service graph RED, circuit breakers, sagas, instances) -------------------

HISTOGRAM_COLUMNS = tuple(f"h{i:02d}" for i in range(HISTOGRAM_BUCKETS))
"""Latency histogram columns ``h00``..``h39`` of the per-minute stats tables (bounds in
:data:`collectors.model.HISTOGRAM_BOUNDS_NS`)."""


def _histogram_columns() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in HISTOGRAM_COLUMNS]


edge_stats = sa.Table(
    "edge_stats",
    metadata,
    sa.Column("parent", sa.Text, primary_key=True),
    sa.Column("child", sa.Text, primary_key=True),
    sa.Column("mode", sa.SmallInteger, primary_key=True),
    sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
    sa.Column("call_count", sa.BigInteger, nullable=False),
    sa.Column("error_count", sa.BigInteger, nullable=False),
    sa.Column("duration_sum_ns", sa.BigInteger, nullable=False),
    sa.Column("duration_max_ns", sa.BigInteger, nullable=False),
    *_histogram_columns(),
    # Calls answered 429 (rate limited): not counted in error_count.
    sa.Column("throttled_count", sa.BigInteger, nullable=False, server_default="0"),
    # Up to EXEMPLARS trace ids of calls in the minute, each followed by a space.
    sa.Column("exemplars", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_edge_stats_bucket_ns", "bucket_ns"),
    sqlite_with_rowid=False,
)

operation_stats = sa.Table(
    "operation_stats",
    metadata,
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
    sa.Column("request_count", sa.BigInteger, nullable=False),
    sa.Column("error_count", sa.BigInteger, nullable=False),
    sa.Column("duration_sum_ns", sa.BigInteger, nullable=False),
    sa.Column("duration_max_ns", sa.BigInteger, nullable=False),
    *_histogram_columns(),
    # Requests answered 429 (rate limited): not counted in error_count.
    sa.Column("throttled_count", sa.BigInteger, nullable=False, server_default="0"),
    # The rate limit the operation's spans record (rate_limit.limit per rate_limit.window_ms).
    sa.Column("rate_limit", sa.BigInteger, nullable=True),
    sa.Column("rate_limit_window_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_operation_stats_bucket_ns", "bucket_ns"),
    sqlite_with_rowid=False,
)

instance_stats = sa.Table(
    "instance_stats",
    metadata,
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("instance_id", sa.Text, primary_key=True),
    sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
    sa.Column("request_count", sa.BigInteger, nullable=False),
    sa.Column("error_count", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
    sa.Index("ix_instance_stats_bucket_ns", "bucket_ns"),
    sqlite_with_rowid=False,
)

breaker_calls = sa.Table(
    "breaker_calls",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("caller", sa.Text, primary_key=True),
    sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
    sa.Column("callee", sa.Text, nullable=False),
    sa.Column("call_count", sa.BigInteger, nullable=False),
    sa.Column("failure_count", sa.BigInteger, nullable=False),
    sa.Column("rejected_count", sa.BigInteger, nullable=False),
    sa.Column("last_ns", sa.BigInteger, nullable=False),
    sa.Column("last_state", sa.Text, nullable=False),
    # The breaker's settings its spans record (the latest seen in the minute).
    sa.Column("failure_threshold", sa.BigInteger, nullable=True),
    sa.Column("reset_timeout_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_breaker_calls_bucket_ns", "bucket_ns"),
    sqlite_with_rowid=False,
)

breaker_transitions = sa.Table(
    "breaker_transitions",
    metadata,
    sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
    sa.Column("span_id", sa.LargeBinary(8), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("caller", sa.Text, nullable=False),
    sa.Column("time_ns", sa.BigInteger, nullable=False),
    sa.Column("from_state", sa.Text, nullable=False),
    sa.Column("to_state", sa.Text, nullable=False),
    sa.Column("failure_count", sa.BigInteger, nullable=True),
    sa.Index("ix_breaker_transitions_name_time", "name", "time_ns"),
    sa.Index("ix_breaker_transitions_time_ns", "time_ns"),
)

sagas = sa.Table(
    "sagas",
    metadata,
    sa.Column("saga_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("trace_id", sa.LargeBinary(16), nullable=False),
    sa.Column("root_span_id", sa.LargeBinary(8), nullable=True),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("start_ns", sa.BigInteger, nullable=False),
    sa.Column("end_ns", sa.BigInteger, nullable=False),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Index("ix_sagas_start_ns", "start_ns"),
    sa.Index("ix_sagas_outcome_start_ns", "outcome", "start_ns"),
)

saga_steps = sa.Table(
    "saga_steps",
    metadata,
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
    sa.Column("kind", sa.Text, nullable=True),
    sa.Index("ix_saga_steps_saga_id", "saga_id"),
)

failovers = sa.Table(
    "failovers",
    metadata,
    sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
    sa.Column("span_id", sa.LargeBinary(8), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("instance_id", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("time_ns", sa.BigInteger, nullable=False),
    sa.Column("callee", sa.Text, nullable=False, server_default=""),
    sa.Column("next_instance_id", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_failovers_time_ns", "time_ns"),
)

# -- chaos experiments (collectors/store/experiments.py reads and writes them) -----------------

experiments = sa.Table(
    "experiments",
    metadata,
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
    sa.Index("experiments_started", "started_ns"),
)
