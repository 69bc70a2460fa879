"""Wherever a failed trace or saga is listed, its reason shows (escaped): search results,
the overview, an edge's and a node's traces, /sagas and /api/v1/sagas."""

from __future__ import annotations

import json

from bs4 import BeautifulSoup
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.app import pattern_spans

HOSTILE = "<img src=x onerror=alert(1)> declined"


def failing_order(factory) -> str:
    """gateway -> orders -> payment; payment's span fails with a hostile status message."""
    gateway, orders, payment = (factory(s).get_tracer("t") for s in ("gateway", "orders", "payment"))
    with gateway.start_as_current_span("POST /api/orders", kind=SpanKind.SERVER) as root:
        with gateway.start_as_current_span("POST orders", kind=SpanKind.CLIENT) as call:
            with orders.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as handler:
                with orders.start_as_current_span("POST payment", kind=SpanKind.CLIENT) as pay:
                    with payment.start_as_current_span("POST /charge", kind=SpanKind.SERVER) as charge:
                        charge.set_status(Status(StatusCode.ERROR, HOSTILE))
                    pay.set_status(Status(StatusCode.ERROR, "payment failed"))
                handler.set_status(Status(StatusCode.ERROR, "order failed"))
            call.set_status(Status(StatusCode.ERROR, "HTTP 500"))
        return format(root.get_span_context().trace_id, "032x")


def soup_of(client, path: str) -> tuple[BeautifulSoup, str]:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    html = response.get_data(as_text=True)
    assert "<img src=x" not in html, f"unescaped span text on {path}"
    return BeautifulSoup(html, "html.parser"), html


def test_search_results_and_the_overview_show_the_deepest_errors_reason(client, tracer_provider_factory):
    trace_id = failing_order(tracer_provider_factory)
    soup, _ = soup_of(client, "/traces?status=error")
    row = soup.select_one(f"tr.trace-row[data-trace-id='{trace_id}']")
    assert row.select_one("td.errors .reason").get_text() == f"payment: {HOSTILE}"
    soup, _ = soup_of(client, "/")
    [reason] = soup.select("section.latest-traces td.errors .reason")
    assert reason.get_text() == f"payment: {HOSTILE}"


def test_an_edge_and_a_node_list_their_failed_traces_with_the_reason(client, tracer_provider_factory):
    failing_order(tracer_provider_factory)
    soup, _ = soup_of(client, "/services/edge?parent=orders&child=payment&window=15m")
    assert soup.select_one("ul.edge-traces .reason").get_text() == f"payment: {HOSTILE}"
    soup, _ = soup_of(client, "/services/node?name=payment&window=15m")
    assert soup.select_one("ul.failing .reason").get_text() == f"payment: {HOSTILE}"


def test_a_successful_trace_shows_no_reason(client, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    soup, _ = soup_of(client, "/traces")
    assert soup.select("tr.trace-row") and not soup.select(".reason")


def test_sagas_list_the_reason_of_each_that_did_not_complete(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "ok-1", ["create", "pay"], None)
    pattern_spans.saga(tracer_provider_factory, "bad-1", ["create", "pay"], 1)
    soup, _ = soup_of(client, "/sagas")
    reasons = {
        tr.select_one("td a").get_text(): tr.select_one("td.reason").get_text() for tr in soup.select("tr.saga")
    }
    assert reasons == {"ok-1": "", "bad-1": "orders: pay failed"}
    doc = json.loads(client.get("/api/v1/sagas").get_data())
    assert {s["saga_id"]: s["reason"] for s in doc["sagas"]} == {"ok-1": None, "bad-1": "orders: pay failed"}
