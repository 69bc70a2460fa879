"""The schema is versioned: migrations build exactly the declared tables, and upgrade old stores."""

from __future__ import annotations

import sys
from pathlib import Path
from subprocess import PIPE

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from collectors.store import SpanStore
from collectors.store.migrate import current_revision, head_revision, upgrade
from collectors.store.schema import metadata
from tests.helpers import ROOT, start_process, stop_process


def test_migrations_match_the_declared_schema(store: SpanStore):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_an_empty_database_is_upgraded_on_open_and_reopening_is_a_no_op(database_url: str):
    engine = sa.create_engine(database_url)
    assert current_revision(engine) is None
    engine.dispose()
    SpanStore.from_url(database_url).close()
    store = SpanStore.from_url(database_url)
    assert current_revision(store.engine) == head_revision()
    upgrade(store.engine)
    assert current_revision(store.engine) == head_revision()
    store.close()


def test_a_store_written_by_an_older_release_is_upgraded_and_still_reads(database_url: str):
    """Data written at revision 0003 (attribute keys inline) reads back after the upgrade."""
    engine = sa.create_engine(database_url)
    upgrade(engine, "0003")
    trace, span = bytes.fromhex("ab" * 16), bytes.fromhex("cd" * 8)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO resources (hash, service_name, attributes, scope_name, scope_version, scope_attributes) "
                "VALUES ('h', 'old-svc', '{\"service.name\":\"old-svc\"}', 's', '1', '{}')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO spans (trace_id, span_id, service, name, kind, start_ns, duration_ns, status_code, "
                "resource_id, attributes) VALUES (:t, :s, 'old-svc', 'old-op', 2, 1000, 5, 0, 1, :a)"
            ),
            {"t": trace, "s": span, "a": '{"http.route":"/old","n":3}'},
        )
        conn.execute(
            sa.text(
                "INSERT INTO trace_summaries (trace_id, root_service, root_name, start_ns, end_ns, span_count, "
                "error_count, services, received_ns) "
                "VALUES (:t, 'old-svc', 'old-op', 1000, 1005, 1, 0, '[\"old-svc\"]', 1)"
            ),
            {"t": trace},
        )
        conn.execute(
            sa.text("INSERT INTO trace_services (service, start_ns, trace_id) VALUES ('old-svc', 1000, :t)"),
            {"t": trace},
        )
        conn.execute(
            sa.text("INSERT INTO trace_attributes (bucket, hash, trace_id) VALUES (0, :h, :t)"),
            {"h": 1234567, "t": trace},  # rebuilt from the spans by revision 0005
        )
        conn.execute(sa.text("INSERT INTO attribute_buckets (bucket) VALUES (0)"))
    engine.dispose()
    old_tag_file = None
    if database_url.startswith("sqlite"):  # releases at 0003 and 0004 kept the index in a file beside
        old_tag_file = Path(engine.url.database).with_name("spans-tags.db")
        old_tag_file.write_bytes(b"")
    store = SpanStore.from_url(database_url)
    try:
        assert current_revision(store.engine) == head_revision()
        assert old_tag_file is None or not old_tag_file.exists()
        [old] = store.get_trace("ab" * 16)
        assert old.attributes == {"http.route": "/old", "n": 3}
        from collectors.store import TraceQuery

        for query in (
            TraceQuery(0, 2**62, service="old-svc"),
            TraceQuery(0, 2**62, tags={"http.route": "/old"}),
            TraceQuery(0, 2**62, service="old-svc", tags={"http.route": "/old", "n": "3"}),
        ):
            assert [t.trace_id for t in store.find_traces(query).traces] == ["ab" * 16], query
    finally:
        store.close()


def test_edges_are_carried_into_edge_stats_and_dependencies_keep_their_figures(database_url: str):
    """Revision 0009 drops ``edges``: minutes only it held become synchronous edge stats,
    minutes both held are not counted twice."""
    engine = sa.create_engine(database_url)
    upgrade(engine, "0008")
    minute = 60_000_000_000
    with engine.begin() as conn:
        insert_edge = sa.text(
            "INSERT INTO edges (parent, child, bucket_ns, call_count, error_count, duration_sum_ns, duration_max_ns) "
            "VALUES (:p, :c, :b, :n, :e, :d, :m)"
        )
        conn.execute(insert_edge, {"p": "web", "c": "db-api", "b": 5 * minute, "n": 7, "e": 2, "d": 70, "m": 30})
        conn.execute(insert_edge, {"p": "orders", "c": "mail", "b": 5 * minute, "n": 3, "e": 1, "d": 30, "m": 12})
        conn.execute(
            sa.text(
                "INSERT INTO edge_stats (parent, child, mode, bucket_ns, call_count, error_count, duration_sum_ns, "
                "duration_max_ns) VALUES ('orders', 'mail', 1, :b, 3, 1, 30, 12)"
            ),
            {"b": 5 * minute},
        )
    engine.dispose()
    store = SpanStore.from_url(database_url)
    try:
        assert current_revision(store.engine) == head_revision()
        found = {(e.parent, e.child): e for e in store.dependencies(0, 10 * minute)}
        web, orders = found[("web", "db-api")], found[("orders", "mail")]
        assert (web.call_count, web.error_count, web.duration_sum_ns, web.duration_max_ns) == (7, 2, 70, 30)
        assert (orders.call_count, orders.error_count, orders.duration_max_ns) == (3, 1, 12)
        modes = {(e.parent, e.mode) for e in store.find_edge_stats(0, 10 * minute)}
        assert modes == {("web", "sync"), ("orders", "async")}
        with store.engine.connect() as conn:
            assert "edges" not in sa.inspect(conn).get_table_names()
    finally:
        store.close()


REPLICAS = 4
REPLICA = """
import sys
from collectors.store import SpanStore
from collectors.store.migrate import current_revision
print("ready", flush=True)
sys.stdin.readline()
try:
    store = SpanStore.from_url(sys.argv[1], background_checkpoints=False)
except Exception as err:
    print(f"{type(err).__name__}: {err}", flush=True)
else:
    print(current_revision(store.engine), flush=True)
    store.close()
"""
"""One replica's start: once told to go, open the store and print the revision it found,
or why it could not open."""


def test_replicas_opening_an_empty_database_at_once_all_start_on_one_schema(database_url: str):
    """Several servers started together (docker compose up --scale spyglass=3) each open the
    store, which upgrades the schema: one upgrades, the others wait and find it done.

    The replicas are processes of their own, told to go together once each has imported
    everything, so their upgrades overlap as the servers' do."""
    replicas = [
        start_process([sys.executable, "-c", REPLICA, database_url], cwd=ROOT, stdin=PIPE, stdout=PIPE, text=True)
        for _ in range(REPLICAS)
    ]
    try:
        assert [replica.stdout.readline() for replica in replicas] == ["ready\n"] * REPLICAS
        for replica in replicas:
            replica.stdin.write("go\n")
            replica.stdin.flush()
        found = [replica.communicate(timeout=120)[0].strip() for replica in replicas]
    finally:
        for replica in replicas:
            stop_process(replica)
    assert found == [head_revision()] * REPLICAS
    store = SpanStore.from_url(database_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        store.close()


def test_a_row_per_span_store_upgrades_to_fragments_with_progress_and_reads_back(database_url: str, capfd):
    """A data directory of the release before fragments (revision 0014, a row per span)
    upgrades on open: every span reads back as it was written, field for field."""
    from collectors.store import rows as _rows
    from tests.collectors.test_fragments import GATEWAY, ORDERS, eight_spans, same_span, spans

    engine = sa.create_engine(database_url)
    upgrade(engine, "0014")
    written = [spans()] + [eight_spans(i) for i in range(1, 151)]
    with engine.begin() as conn:
        resource_ids = {}
        for resource in (GATEWAY, ORDERS):
            digest = _rows.resource_hash(resource)
            conn.execute(sa.text(
                "INSERT INTO resources (hash, service_name, attributes, scope_name, scope_version, scope_attributes) "
                "VALUES (:hash, :service_name, :attributes, :scope_name, :scope_version, :scope_attributes)"
            ), _rows.resource_row(resource, digest))
            resource_ids[id(resource)] = conn.execute(
                sa.text("SELECT id FROM resources WHERE hash = :h"), {"h": digest}
            ).scalar_one()
        keys = sorted({k for trace in written for s in trace for k in s.attributes})
        for key in keys:
            conn.execute(sa.text("INSERT INTO attribute_keys (key) VALUES (:k)"), {"k": key})
        key_ids = dict(conn.execute(sa.text("SELECT key, id FROM attribute_keys")).all())
        columns = ", ".join(_rows.SPAN_COLUMNS)
        marks = ", ".join(f":c{i}" for i in range(len(_rows.SPAN_COLUMNS)))
        for trace in written:
            for s in trace:
                values = _rows.span_values(s, resource_ids[id(s.resource)], key_ids)
                conn.execute(sa.text(f"INSERT INTO spans ({columns}) VALUES ({marks})"),
                             {f"c{i}": v for i, v in enumerate(values)})
    engine.dispose()
    capfd.readouterr()
    store = SpanStore.from_url(database_url)
    try:
        progress = capfd.readouterr().err
        assert "migration 0015: 0 of 1,204 spans" in progress and "1,204 of 1,204 spans" in progress
        for trace in written:
            back = store.get_trace(trace[0].trace_id)
            expected = sorted(trace, key=lambda s: (s.start_ns, s.span_id))
            assert len(back) == len(expected) and all(same_span(a, b) for a, b in zip(expected, back, strict=True))
        with store.engine.connect() as conn:
            # The tag index is rebuilt in this release's format: a trace is a candidate for its tag.
            from collectors.store import tag_index

            candidates = [t for chunk in tag_index.candidates(conn, "user.id", "u57", 0, 2**62) for t in chunk]
            assert bytes.fromhex(eight_spans(57)[0].trace_id) in candidates and len(candidates) <= 3
            assert "spans" not in sa.inspect(conn).get_table_names()
            dictionaries = conn.execute(sa.text("SELECT count(*) FROM zstd_dictionaries")).scalar_one()
        assert dictionaries == 1  # trained on the converted fragments
    finally:
        store.close()
