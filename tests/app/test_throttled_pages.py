"""Throttled requests and the gateway's rate limit on the graph, the node and edge pages
and /api/v1, over spans sent by the OpenTelemetry SDK."""

from __future__ import annotations

import json

from bs4 import BeautifulSoup
from opentelemetry.trace import SpanKind, Status, StatusCode

LIMIT = {"rate_limit.limit": 20, "rate_limit.window_ms": 1000}


def send_burst(factory, allowed: int = 3, throttled: int = 2) -> None:
    """Requests to the gateway: ``allowed`` go on to orders, ``throttled`` are answered 429."""
    gateway = factory("gateway").get_tracer("t")
    orders = factory("orders").get_tracer("t")
    for i in range(allowed + throttled):
        status = 200 if i < allowed else 429
        attrs = {**LIMIT, "http.request.method": "POST", "http.route": "/api/orders"}
        attrs["http.response.status_code"] = status
        with gateway.start_as_current_span("POST /api/orders", kind=SpanKind.SERVER, attributes=attrs):
            if status == 429:
                continue
            peer = {"peer.service": "orders"}
            with gateway.start_as_current_span("POST orders", kind=SpanKind.CLIENT, attributes=peer):
                with orders.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
                    pass
    # orders turns a client away with 429 of its own: the edge counts it as throttled.
    with gateway.start_as_current_span("POST /api/orders", kind=SpanKind.SERVER, attributes=LIMIT):
        with gateway.start_as_current_span(
            "POST orders", kind=SpanKind.CLIENT, attributes={"peer.service": "orders", "http.response.status_code": 429}
        ) as client_span:
            with orders.start_as_current_span(
                "POST /orders", kind=SpanKind.SERVER, attributes={"http.response.status_code": 429}
            ):
                pass
            client_span.set_status(Status(StatusCode.ERROR, "HTTP 429"))


def test_graph_json_counts_throttled_apart_from_errors_and_shows_the_limit(client, tracer_provider_factory):
    send_burst(tracer_provider_factory)
    doc = json.loads(client.get("/api/v1/graph?window=15m").get_data())
    nodes = {n["name"]: n for n in doc["nodes"]}
    gateway = nodes["gateway"]
    assert (gateway["red"]["count"], gateway["red"]["error_count"], gateway["red"]["throttled_count"]) == (6, 0, 2)
    assert abs(gateway["red"]["throttled_rate"] - 2 / 6) < 1e-9
    assert gateway["rate_limit"] == {"limit": 20, "window_ms": 1000}
    assert nodes["orders"]["rate_limit"] is None
    [edge] = [e for e in doc["edges"] if (e["parent"], e["child"]) == ("gateway", "orders")]
    assert (edge["red"]["count"], edge["red"]["error_count"], edge["red"]["throttled_count"]) == (4, 0, 1)
    assert edge["health"] == "ok", "a throttled call is no error"
    service = json.loads(client.get("/api/v1/services/gateway?window=15m").get_data())
    assert service["red"]["throttled_count"] == 2 and service["rate_limit"]["limit"] == 20
    assert sum(m["throttled"] for m in service["series"]) == 2


def test_graph_page_node_and_edge_pages_say_throttled(client, tracer_provider_factory):
    send_burst(tracer_provider_factory)
    soup = BeautifulSoup(client.get("/services?window=15m").get_data(as_text=True), "html.parser")
    node = soup.select_one("a.node-link[data-node='gateway'] g.node")
    assert node.select_one("text.limit").get_text() == "limit 20 per 1 s"
    assert "33% throttled" in node.select_one("text.red").get_text()
    assert node.select_one("text.limit") is not None
    assert soup.select_one("a.node-link[data-node='orders'] text.limit") is None
    edge = soup.select_one("a.edge-link[data-parent='gateway'][data-child='orders']")
    assert "1 throttled" in edge.select_one("text").get_text()
    page = BeautifulSoup(client.get("/services/node?name=gateway&window=15m").get_data(as_text=True), "html.parser")
    assert "2 throttled (33.3%)" in page.select_one(".throttled").get_text()
    assert "20 per 1 s" in page.select_one(".rate-limit").get_text()
    row = [tr for tr in page.select("table.operations tr") if tr.td and tr.td.get_text() == "POST /api/orders"][0]
    assert [td.get_text() for td in row.select("td")][1:4] == ["6", "0.0%", "2"]
    edge_page = BeautifulSoup(
        client.get("/services/edge?parent=gateway&child=orders&window=15m").get_data(as_text=True), "html.parser"
    )
    assert edge_page.select_one(".edge-detail .throttled").get_text() == "1 throttled"


def test_the_overview_lists_each_service_with_its_throttled_requests(client, tracer_provider_factory):
    send_burst(tracer_provider_factory)
    soup = BeautifulSoup(client.get("/").get_data(as_text=True), "html.parser")
    rows = {tr["data-service"]: tr for tr in soup.select("table.health tr.service")}
    assert rows["gateway"].select_one("td.throttled").get_text(" ", strip=True) == "33.3% (2)"
    assert rows["gateway"].select_one("td.errors").get_text(" ", strip=True) == "0.0% (0)"
    assert rows["orders"].select_one("td.throttled").get_text(" ", strip=True) == "25.0% (1)"
