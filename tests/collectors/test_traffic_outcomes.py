"""Throttled requests (429) and a callee's 4xx answers in the traffic stats: a node's
errors and its incoming edge's agree; the rate limits and breaker settings spans record
are read back."""

from __future__ import annotations

import time

import sqlalchemy as sa

from collectors.model import KIND_CLIENT, KIND_SERVER, STATUS_ERROR, Resource, Span
from collectors.store import SpanStore
from collectors.store.migrate import current_revision, head_revision, upgrade

NOW = time.time_ns()
GATEWAY = Resource("gateway", {"service.name": "gateway"})
ORDERS = Resource("orders", {"service.name": "orders"})
PAYMENT = Resource("payment", {"service.name": "payment"})
WINDOW = (NOW - 60_000_000_000, NOW + 60_000_000_000)


def span(
    trace: int,
    sid: str,
    parent: str = "",
    *,
    res: Resource = GATEWAY,
    kind: int = KIND_SERVER,
    name: str = "",
    attrs: dict | None = None,
    status: int = 0,
    message: str = "",
) -> Span:
    return Span(
        f"{trace:032x}",
        sid * 16,
        parent * 16 if parent else "",
        name or f"op-{sid}",
        kind,
        NOW + trace,
        NOW + trace + 5_000_000,
        res,
        attrs or {},
        status_code=status,
        status_message=message,
    )


def call(trace: int, answer: int | None, *, client_error: bool, server_error: bool = False) -> list[Span]:
    """orders' client span to payment and payment's server span; ``answer`` is the HTTP
    status both record (None: the call got no answer, e.g. a timeout)."""
    status = {"http.response.status_code": answer} if answer is not None else {}
    return [
        span(trace, "a", res=ORDERS, name="POST /orders"),
        span(
            trace,
            "b",
            "a",
            res=ORDERS,
            kind=KIND_CLIENT,
            name="POST payment",
            attrs={"peer.service": "payment", **status},
            status=STATUS_ERROR if client_error else 0,
        ),
        span(
            trace,
            "c",
            "b",
            res=PAYMENT,
            name="POST /charge",
            attrs=status,
            status=STATUS_ERROR if server_error else 0,
        ),
    ]


def payment_figures(store: SpanStore) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(calls, errors, throttled) of the orders -> payment edge and of payment's requests."""
    [edge] = [e for e in store.find_edge_stats(*WINDOW) if e.child == "payment" and e.mode == "sync"]
    [op] = store.find_operation_traffic(*WINDOW, service="payment")
    edge_figures = (edge.call_count, edge.error_count, edge.throttled_count)
    return edge_figures, (op.request_count, op.error_count, op.throttled_count)


def test_a_429_is_throttled_on_the_node_never_an_error_under_either_attribute_name(store: SpanStore):
    store.write_spans(
        [
            span(1, "1", attrs={"http.response.status_code": 429, "http.request.method": "POST"}),
            span(2, "2", attrs={"http.status_code": 429, "http.method": "POST"}),  # older SDKs' names
            span(3, "3", attrs={"http.status_code": "429"}),
            span(4, "4", attrs={"http.response.status_code": 500}, status=STATUS_ERROR),
            span(5, "5", attrs={"http.response.status_code": 200}),
        ]
    )
    ops = store.find_operation_traffic(*WINDOW, service="gateway")
    assert sum(o.request_count for o in ops) == 5
    assert sum(o.throttled_count for o in ops) == 3
    assert sum(o.error_count for o in ops) == 1
    [minute] = store.find_service_minutes("gateway", *WINDOW)
    assert (minute.request_count, minute.error_count, minute.throttled_count) == (5, 1, 3)


def test_a_throttled_call_counts_on_the_edge_and_the_callee_alike(store: SpanStore):
    store.write_spans(call(1, 429, client_error=True))
    assert payment_figures(store) == ((1, 0, 1), (1, 0, 1))


def test_a_declined_card_is_no_error_of_the_edge_as_it_is_none_of_the_callee(store: SpanStore):
    """The client span's ERROR for a 402 answer used to count on the edge while the
    callee's server span (no error for a 4xx) kept the node at 0%."""
    store.write_spans(call(1, 402, client_error=True))
    store.write_spans(call(2, 500, client_error=True, server_error=True))
    store.write_spans(call(3, 200, client_error=False))
    assert payment_figures(store) == ((3, 1, 0), (3, 1, 0))


def test_a_call_without_an_answer_fails_on_the_edge_only(store: SpanStore):
    """A timeout is the caller's failure: the callee's own span may have succeeded late."""
    store.write_spans(call(1, None, client_error=True))
    assert payment_figures(store) == ((1, 1, 0), (1, 0, 0))


def test_the_answer_is_read_from_whichever_span_of_the_pair_arrives_last(store: SpanStore):
    server_first = call(1, 429, client_error=True)
    store.write_spans(server_first[2:])
    store.write_spans(server_first[:2])
    client_first = call(2, 402, client_error=True)
    store.write_spans(client_first[:2])
    store.write_spans(client_first[2:])
    assert payment_figures(store) == ((2, 0, 1), (2, 0, 1))


def test_a_peer_named_by_a_client_span_is_throttled_too(store: SpanStore):
    store.write_spans(
        [
            span(
                1,
                "1",
                kind=KIND_CLIENT,
                attrs={"peer.service": "maps-api", "http.response.status_code": 429},
                status=STATUS_ERROR,
            )
        ]
    )
    [edge] = [e for e in store.find_edge_stats(*WINDOW) if e.child == "maps-api"]
    assert (edge.mode, edge.call_count, edge.error_count, edge.throttled_count) == ("peer", 1, 0, 1)


def test_rate_limits_and_breaker_settings_recorded_on_spans_are_read_back(store: SpanStore):
    limit = {"rate_limit.limit": 20, "rate_limit.window_ms": 1000}
    breaker = {
        "circuit_breaker.name": "orders->payment",
        "circuit_breaker.state": "closed",
        "circuit_breaker.failure_threshold": 5,
        "circuit_breaker.reset_timeout_ms": 10_000,
    }
    name = "POST /api/orders"
    store.write_spans(
        [span(1, "1", name=name, attrs=limit), span(1, "2", "1", res=ORDERS, kind=KIND_CLIENT, attrs=breaker)]
    )
    store.write_spans([span(2, "3", name=name)])  # a later span without them keeps what was recorded
    [op] = store.find_operation_traffic(*WINDOW, service="gateway")
    assert (op.rate_limit, op.rate_limit_window_ms) == (20, 1000)
    [calls] = store.find_breaker_calls(*WINDOW)
    assert (calls.failure_threshold, calls.reset_timeout_ms) == (5, 10_000)
    store.write_spans([span(3, "4", name=name, attrs={"rate_limit.limit": "many"})])  # not a number: ignored
    [op] = store.find_operation_traffic(*WINDOW, service="gateway")
    assert (op.rate_limit, op.rate_limit_window_ms) == (20, 1000)


def test_a_store_at_revision_0010_upgrades_with_no_throttled_calls_and_no_settings(database_url: str):
    engine = sa.create_engine(database_url)
    upgrade(engine, "0010")
    minute = 60_000_000_000
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO edge_stats (parent, child, mode, bucket_ns, call_count, error_count, duration_sum_ns, "
                "duration_max_ns) VALUES ('orders', 'payment', 0, :b, 4, 1, 40, 12)"
            ),
            {"b": 5 * minute},
        )
        conn.execute(
            sa.text(
                "INSERT INTO operation_stats (service, name, bucket_ns, request_count, error_count, duration_sum_ns, "
                "duration_max_ns) VALUES ('payment', 'POST /charge', :b, 4, 1, 40, 12)"
            ),
            {"b": 5 * minute},
        )
        conn.execute(
            sa.text(
                "INSERT INTO breaker_calls (name, caller, bucket_ns, callee, call_count, failure_count, "
                "rejected_count, last_ns, last_state) VALUES ('orders->payment', 'orders', :b, 'payment', 4, 1, 0, "
                ":b, 'closed')"
            ),
            {"b": 5 * minute},
        )
    engine.dispose()
    store = SpanStore.from_url(database_url)
    try:
        assert current_revision(store.engine) == head_revision()
        [edge] = store.find_edge_stats(0, 10 * minute)
        assert (edge.call_count, edge.error_count, edge.throttled_count) == (4, 1, 0)
        [op] = store.find_operation_traffic(0, 10 * minute)
        assert (op.request_count, op.error_count, op.throttled_count, op.rate_limit) == (4, 1, 0, None)
        [calls] = store.find_breaker_calls(0, 10 * minute)
        assert (calls.call_count, calls.failure_threshold, calls.reset_timeout_ms) == (4, None, None)
    finally:
        store.close()


def test_a_breakers_state_is_dated_from_the_first_call_of_its_latest_run(store: SpanStore):
    minute = 60_000_000_000
    base = NOW - NOW % minute - 3 * minute

    def breaker_call(i: int, at: int, state: str) -> Span:
        attrs = {"circuit_breaker.name": "orders->payment", "circuit_breaker.state": state}
        s = span(100 + i, f"{i:x}", res=ORDERS, kind=KIND_CLIENT, attrs=attrs)
        s.start_ns, s.end_ns = at, at + 1_000
        return s

    store.write_spans(
        [
            breaker_call(1, base + 5, "closed"),
            breaker_call(2, base + minute + 7, "open"),  # the run of 'open' starts here
            breaker_call(3, base + 2 * minute + 9, "open"),
        ]
    )
    [calls] = store.find_breaker_calls(base + minute, base + 3 * minute)
    assert (calls.last_state, calls.state_since_ns) == ("open", base + minute + 7)
    [calls] = store.find_breaker_calls(base + 2 * minute, base + 3 * minute)
    assert calls.state_since_ns == base + minute + 7, "the run began before the window"
