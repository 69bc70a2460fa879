"""Trace fragments: the encoding gives back every span as sent, and compression dictionaries
trained on the store's fragments keep every fragment readable, by any process."""

from __future__ import annotations

import math

import sqlalchemy as sa

from collectors.model import BYTES_MARKER, STATUS_ERROR, Resource, Span, SpanEvent, SpanLink
from collectors.store import SpanStore
from collectors.store.compression import NO_DICTIONARY, Compression
from collectors.store.fragments import Fragment, encode
from collectors.store.schema import span_fragments, zstd_dictionaries

T = "0af7651916cd43dd8448eb211c80319c"
NOW = 1_700_000_000_000_000_000
GATEWAY = Resource("gateway", {"service.name": "gateway", "host.name": "gw-1"}, "flask", "3.0")
ORDERS = Resource("orders", {"service.name": "orders"})


def spans() -> list[Span]:
    """Spans using every field: all value types (None, NaN, arrays, maps, bytes), events,
    links, a parent outside the fragment, trace state, flags and dropped counts."""
    return [
        Span(
            T,
            "00000000000000a1",
            "",
            "POST /api/orders",
            2,
            NOW,
            NOW + 5_000_000,
            GATEWAY,
            {"http.route": "/api/orders", "n": 3, "ratio": 0.5, "ok": True, "empty": None},
        ),
        Span(
            T,
            "00000000000000a2",
            "00000000000000a1",
            "place",
            3,
            NOW + 1_000,
            NOW + 900,  # ends before it starts: kept as sent
            ORDERS,
            # the same keys as the first span's, in another order
            {"ok": False, "n": -(2**63), "http.route": "/x", "ratio": math.inf, "empty": None},
            events=(SpanEvent(NOW + 2_000, "exception", {"exception.type": "Declined", "nan": math.nan}, 2),),
            links=(SpanLink("ff" * 16, "ee" * 8, {"why": ["retry", 1]}, "k=v"),),
            status_code=STATUS_ERROR,
            status_message="card <b>declined</b>",
            trace_state="vendor=1",
            flags=1,
            dropped_attributes_count=4,
            dropped_events_count=5,
            dropped_links_count=6,
        ),
        Span(
            T,
            "00000000000000a3",
            "00000000000000ff",  # its parent arrives in another batch
            "lookup",
            1,
            NOW + 2_000,
            NOW + 3_000,
            ORDERS,
            {"nested": {"a": [1, 2.5, "x"], "b": {"c": None}}, "raw": {BYTES_MARKER: "AAEC"}},
        ),
        Span(T, "00000000000000a4", "00000000000000a3", "no attributes", 0, NOW + 2_500, NOW + 2_600, GATEWAY),
    ]


def same_span(a: Span, b: Span) -> bool:
    """Equal, with NaN equal to NaN (a span holding NaN is never == itself)."""
    return repr(a) == repr(b) and list(a.attributes) == list(b.attributes)


def test_every_field_of_every_span_comes_back_as_sent():
    sent = spans()
    resources = {id(GATEWAY): 1, id(ORDERS): 2}
    keys = {k: i for i, k in enumerate(sorted({k for s in sent for k in s.attributes}), start=10)}
    raw = encode(sent, resources, keys)
    fragment = Fragment(T, raw)
    back = fragment.spans({i: k for k, i in keys.items()}, {1: GATEWAY, 2: ORDERS})
    assert len(fragment) == 4
    assert all(same_span(a, b) for a, b in zip(sent, back, strict=True)), (sent, back)
    # Attribute keys keep the order they were sent in, span by span.
    assert list(back[1].attributes) == ["ok", "n", "http.route", "ratio", "empty"]
    parents = [o.parent_span_id for o in fragment.outlines()]
    assert parents == ["", "00000000000000a1", "00000000000000ff", "00000000000000a3"]
    assert fragment.resource_ids == {1, 2} and fragment.key_ids == set(keys.values())


def test_an_unknown_encoding_is_refused_not_misread():
    try:
        Fragment(T, b"[99, 1]")
    except ValueError as err:
        assert "99" in str(err)
    else:
        raise AssertionError("a fragment of an unknown format was read")


def eight_spans(i: int) -> list[Span]:
    trace = f"{i:032x}"
    return [
        Span(trace, f"{i:08x}{j:08x}", f"{i:08x}{j - 1:08x}" if j else "", f"op-{j % 3}", 2, NOW + i * 1_000 + j,
             NOW + i * 1_000 + j + 500, GATEWAY,
             {"url.full": f"http://shop/api/orders/{i * 97 + j}", "user.id": f"u{i}"})
        for j in range(8)
    ]


def test_a_dictionary_is_trained_saved_and_used_and_every_fragment_stays_readable(database_url: str):
    store = SpanStore.from_url(database_url, background_checkpoints=False)
    try:
        # Train early: after 40 fragments (the store's default waits for far more).
        store.fragments.compression = Compression(store.database, sample_fragments=40, sample_min_bytes=1)
        for i in range(60):
            store.write_spans(eight_spans(i))
        store.fragments.compression.wait_for_training(30)
        for i in range(60, 80):
            store.write_spans(eight_spans(i))
        with store.engine.connect() as conn:
            used = dict(
                conn.execute(
                    sa.select(span_fragments.c.dictionary_id, sa.func.count()).group_by(span_fragments.c.dictionary_id)
                ).all()
            )
            saved = conn.execute(sa.select(sa.func.count()).select_from(zstd_dictionaries)).scalar_one()
        assert saved == 1
        assert used[NO_DICTIONARY] >= 40 and sum(n for d, n in used.items() if d != NO_DICTIONARY) >= 20
        for i in (0, 59, 79):
            assert [s.span_id for s in store.get_trace(f"{i:032x}")] == [s.span_id for s in eight_spans(i)]
    finally:
        store.close()
    # Another process (a new store) reads fragments of both kinds and compresses new ones
    # with the saved dictionary from its start.
    again = SpanStore.from_url(database_url, background_checkpoints=False)
    try:
        assert again.fragments.compression.dictionary_id != NO_DICTIONARY
        assert len(again.get_trace(f"{0:032x}")) == 8 and len(again.get_trace(f"{79:032x}")) == 8
        again.write_spans(eight_spans(100))
        assert [s.attributes for s in again.get_trace(f"{100:032x}")] == [s.attributes for s in eight_spans(100)]
    finally:
        again.close()


def test_a_fragments_tag_hashes_are_those_of_every_attribute_and_resource_value():
    """The writer hashes a fragment's values from its columns: the same hashes as hashing
    each span's and resource's attributes (True/1/1.0 and False/0 index both readings)."""
    from collectors.store import tag_index
    from collectors.store.fragments import encode_with_columns

    sent = spans() + [
        Span(T, "00000000000000b1", "", "x", 1, NOW, NOW, ORDERS,
             {"n": 1, "ok": 1.0, "f": 0.0, "big": 2**60, "s": "x" * 300})
    ]
    keys = {k: i for i, k in enumerate(sorted({k for s in sent for k in s.attributes}))}
    _, columns = encode_with_columns(sent, {id(GATEWAY): 1, id(ORDERS): 2}, keys)
    from_columns = tag_index.packed_column_hashes(columns, [GATEWAY, ORDERS])
    services = [{tag_index.SERVICE_KEY: r.service_name} for r in (GATEWAY, ORDERS)]
    maps = [s.attributes for s in sent] + [GATEWAY.attributes, ORDERS.attributes] + services
    from_spans = tag_index.packed_hashes(maps)
    def hashes(packed: bytes) -> set[bytes]:
        return {packed[i : i + 3] for i in range(0, len(packed), 3)}

    assert len(from_columns) % 3 == 0 and hashes(from_columns) == hashes(from_spans) and len(from_columns) > 40
    for key, text in (("ok", "true"), ("ok", "1"), ("n", "3"), ("http.route", "/x"), ("host.name", "gw-1")):
        assert tag_index.needle(key, text) in from_columns, (key, text)


def test_a_process_that_kept_a_trace_in_memory_reads_it_again_once_another_wrote_to_it(database_url: str):
    """Two processes (two stores on one database) writing parts of one trace: the first
    keeps its part in memory for its next batch, but must not trust it once the second
    has added spans; a re-sent span of the second's part is still recognised."""
    a = SpanStore.from_url(database_url, background_checkpoints=False)
    b = SpanStore.from_url(database_url, background_checkpoints=False)
    try:
        root = Span(T, "00000000000000c1", "", "GET /", 2, NOW, NOW + 9_000, GATEWAY)
        child = Span(T, "00000000000000c2", "00000000000000c1", "charge", 2, NOW + 10, NOW + 5_000, ORDERS)
        grandchild = Span(T, "00000000000000c3", "00000000000000c2", "lookup", 3, NOW + 20, NOW + 90, GATEWAY)
        assert a.write_spans([grandchild]).inserted == 1  # its parent is missing: a keeps it
        assert b.write_spans([child]).inserted == 1
        again = a.write_spans([root, child])  # child re-sent through a
        assert (again.inserted, again.duplicates) == (1, 1)
        assert sorted(s.span_id for s in a.get_trace(T)) == ["00000000000000c1", "00000000000000c2", "00000000000000c3"]
        assert a.get_summaries([T])[0].span_count == 3
        # Every call counted once: gateway -> orders and orders -> gateway.
        calls = {(e.parent, e.child): e.call_count for e in a.dependencies(0, 2**62)}
        assert calls == {("gateway", "orders"): 1, ("orders", "gateway"): 1}
    finally:
        a.close()
        b.close()
