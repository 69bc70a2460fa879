"""Why a trace failed, kept in its summary at ingest: the reason of its deepest error span,
whatever order its spans arrive in; old stores read 'unknown' until a span arrives."""

from __future__ import annotations

import time

import sqlalchemy as sa

from collectors.model import KIND_CLIENT, KIND_SERVER, STATUS_ERROR, Resource, Span, SpanEvent
from collectors.store import SpanStore, TraceQuery
from collectors.store import rows as _rows
from collectors.store.migrate import upgrade

NOW = time.time_ns()
TID = "5b8efff798038103d269b633813fc60c"
GATEWAY = Resource("gateway", {"service.name": "gateway"})
ORDERS = Resource("orders", {"service.name": "orders"})
PAYMENT = Resource("payment", {"service.name": "payment"})


def span(sid: str, parent: str, res: Resource, *, error: bool = False, message: str = "", **more) -> Span:
    return Span(
        TID,
        sid * 16,
        parent * 16 if parent else "",
        more.pop("name", f"op-{sid}"),
        more.pop("kind", KIND_SERVER),
        NOW + int(sid, 16) * 1000,
        NOW + 10_000_000,
        res,
        status_code=STATUS_ERROR if error else 0,
        status_message=message,
        **more,
    )


def declined_order() -> list[Span]:
    """gateway -> orders -> payment, failing at every level; payment's span is the deepest."""
    return [
        span("1", "", GATEWAY, error=True, message="HTTP 402: order compensated"),
        span("2", "1", GATEWAY, kind=KIND_CLIENT, error=True, message="HTTP 402"),
        span("3", "2", ORDERS, error=True, message="saga compensated"),
        span("4", "3", ORDERS, kind=KIND_CLIENT, error=True, message="HTTP 402: card declined"),
        span("5", "4", PAYMENT, error=True, message="card <b>declined</b> by issuer"),
        span("6", "3", ORDERS, name="compensate create_order"),
    ]


def summary(store: SpanStore):
    [found] = store.get_summaries([TID])
    return found


def test_the_reason_is_the_deepest_error_spans_status_message(store: SpanStore):
    store.write_spans(declined_order())
    found = summary(store)
    assert (found.failure_service, found.failure_reason) == ("payment", "card <b>declined</b> by issuer")
    assert found.failure == "payment: card <b>declined</b> by issuer"
    [listed] = store.find_traces(TraceQuery(NOW - 10**10, NOW + 10**10, status="error")).traces
    assert listed.failure == found.failure
    assert store.recent_traces(5)[0].failure == found.failure


def test_any_arrival_order_gives_the_same_reason(store: SpanStore):
    """Each service exports on its own schedule: the deepest span may come first (an orphan
    then) or last, and a later batch's ancestors make a stored error the deepest."""
    spans = declined_order()
    for batch in ([spans[4]], [spans[0], spans[1]], [spans[2], spans[3], spans[5]]):
        store.write_spans(batch)
    assert summary(store).failure == "payment: card <b>declined</b> by issuer"


def test_a_deeper_error_arriving_later_replaces_the_reason(store: SpanStore):
    spans = declined_order()
    store.write_spans(spans[:3])
    assert summary(store).failure == "orders: saga compensated"
    store.write_spans(spans[3:])
    assert summary(store).failure == "payment: card <b>declined</b> by issuer"
    store.write_spans([span("7", "", GATEWAY, name="late sibling")])  # no error: the reason stays
    assert summary(store).failure == "payment: card <b>declined</b> by issuer"


def test_without_a_message_the_exception_type_then_the_http_status_say_why(store: SpanStore):
    boom = SpanEvent(NOW, "exception", {"exception.type": "ValueError", "exception.message": "bad quantity"})
    store.write_spans([span("1", "", ORDERS), span("2", "1", ORDERS, error=True, events=(boom,))])
    assert summary(store).failure == "orders: ValueError: bad quantity"


def test_an_http_status_or_nothing_at_all(database_url: str):
    for attrs, expected in (
        ({"http.response.status_code": 503}, "payment: HTTP 503"),
        ({"http.status_code": 500}, "payment: HTTP 500"),
        ({}, "payment: POST /charge: status ERROR, with no message"),
    ):
        store = SpanStore.from_url(database_url, background_checkpoints=False)
        try:
            store.write_spans([span("1", "", PAYMENT, error=True, name="POST /charge", attributes=attrs)])
            assert summary(store).failure == expected
        finally:
            with store.engine.begin() as conn:
                for table in ("span_fragments", "trace_summaries", "trace_tags", "operation_stats"):
                    conn.execute(sa.text(f"DELETE FROM {table}"))
            store.close()


def test_a_trace_without_errors_has_no_reason(store: SpanStore):
    store.write_spans([span("1", "", GATEWAY), span("2", "1", ORDERS)])
    assert summary(store).failure == "" and summary(store).failure_reason is None


def test_a_trace_stored_before_reasons_says_unknown_until_its_next_span(database_url: str):
    engine = sa.create_engine(database_url)
    upgrade(engine, "0013")
    old = declined_order()
    with engine.begin() as conn:
        store_without_reasons(conn, old[:5])
    engine.dispose()
    store = SpanStore.from_url(database_url)  # upgrades to the newest revision
    try:
        assert summary(store).failure == "unknown"
        store.write_spans(old[5:])  # no error itself: the stored deepest error is read back
        assert summary(store).failure == "payment: card <b>declined</b> by issuer"
    finally:
        store.close()


def store_without_reasons(conn: sa.Connection, spans: list[Span]) -> None:
    """Write spans (without attributes) as a release at revision 0013 did: its summaries
    have no failure columns."""
    for service in ("gateway", "orders", "payment"):
        conn.execute(
            sa.text(
                "INSERT INTO resources (hash, service_name, attributes, scope_name, scope_version, "
                "scope_attributes) VALUES (:h, :s, '{}', '', '', '{}')"
            ),
            {"h": f"old-{service}", "s": service},
        )
    ids = dict(conn.execute(sa.text("SELECT service_name, id FROM resources")).all())
    columns = ", ".join(_rows.SPAN_COLUMNS)
    marks = ", ".join(f":c{i}" for i in range(len(_rows.SPAN_COLUMNS)))
    for s in spans:
        values = _rows.span_values(s, ids[s.service], {})
        conn.execute(sa.text(f"INSERT INTO spans ({columns}) VALUES ({marks})"), {f"c{i}": v for i, v in enumerate(values)})
    conn.execute(
        sa.text(
            "INSERT INTO trace_summaries (trace_id, root_span_id, root_service, root_name, start_ns, end_ns, "
            "span_count, error_count, services, received_ns) VALUES (:t, :r, 'gateway', 'op-1', :s, :e, 5, 5, :v, :s)"
        ),
        {
            "t": bytes.fromhex(TID),
            "r": bytes.fromhex("1" * 16),
            "s": NOW,
            "e": NOW + 10_000_000,
            "v": '["gateway", "orders", "payment"]',
        },
    )
