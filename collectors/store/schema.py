"""The tables of the span store, declared once with SQLAlchemy Core.

Ids are stored as binary (16 bytes for a trace, 8 for a span); attribute keys are
stored inside compact JSON; resources (resource attributes plus instrumentation scope)
are deduplicated into their own table so that a span row carries only an integer.
The Alembic migrations under ``collectors/migrations`` create exactly these tables;
``tests/collectors/test_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa

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

spans = sa.Table(
    "spans",
    metadata,
    sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
    sa.Column("span_id", sa.LargeBinary(8), primary_key=True),
    sa.Column("parent_span_id", sa.LargeBinary(8), nullable=True),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("start_ns", sa.BigInteger, nullable=False),
    sa.Column("duration_ns", sa.BigInteger, nullable=False),
    sa.Column("status_code", sa.SmallInteger, nullable=False),
    sa.Column("status_message", sa.Text, nullable=True),
    sa.Column("resource_id", sa.Integer, nullable=False),
    sa.Column("attributes", sa.Text, nullable=True),
    sa.Column("events", sa.Text, nullable=True),
    sa.Column("links", sa.Text, nullable=True),
    sa.Column("extra", sa.Text, nullable=True),
    sqlite_with_rowid=False,
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
    sa.Index("ix_trace_summaries_start_ns", "start_ns"),
    sa.Index("ix_trace_summaries_received_ns", "received_ns"),
)

trace_services = sa.Table(
    "trace_services",
    metadata,
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("start_ns", sa.BigInteger, primary_key=True),
    sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
    sqlite_with_rowid=False,
)

trace_attributes = sa.Table(
    "trace_attributes",
    metadata,
    sa.Column("hash", sa.BigInteger, primary_key=True),
    sa.Column("start_ns", sa.BigInteger, primary_key=True),
    sa.Column("trace_id", sa.LargeBinary(16), primary_key=True),
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

edges = sa.Table(
    "edges",
    metadata,
    sa.Column("parent", sa.Text, primary_key=True),
    sa.Column("child", sa.Text, primary_key=True),
    sa.Column("bucket_ns", sa.BigInteger, primary_key=True),
    sa.Column("call_count", sa.BigInteger, nullable=False),
    sa.Column("error_count", sa.BigInteger, nullable=False),
    sa.Column("duration_sum_ns", sa.BigInteger, nullable=False),
    sa.Column("duration_max_ns", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
