"""Discovery on the /registry page and in /api/v1/registry: lookups per caller and the
latest fail-overs, from spans sent by the OpenTelemetry SDK as any service would send them."""

from __future__ import annotations

import json

from bs4 import BeautifulSoup

from app import create_app
from tests.app import pattern_spans

UNREACHABLE = "http://127.0.0.1:9"


def test_the_page_lists_lookups_per_caller_and_each_fail_over_with_its_trace(
    settings, store, tracer_provider_factory
):
    trace_id = pattern_spans.discovery_failover(tracer_provider_factory, reason="<script>alert(1)</script>")
    pattern_spans.order_flow(tracer_provider_factory)  # calls without discovery spans
    client = create_app(settings.replace(registry_url=UNREACHABLE), store=store).test_client()

    response = client.get("/registry/instances?window=15m")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    soup = BeautifulSoup(html, "html.parser")
    lookups = [[td.get_text() for td in tr.select("td")] for tr in soup.select("table.lookups tr.lookup")]
    assert lookups == [["orders", "1", "0"]]
    [row] = soup.select("table.failovers tr.failover")
    cells = [td.get_text(" ", strip=True) for td in row.select("td")]
    assert cells[1:5] == ["orders → inventory", "inventory-1", "<script>alert(1)</script>", "inventory-2"]
    assert row.select_one("a")["href"].startswith(f"/traces/{trace_id}?span=")
    # A lookup is how orders found inventory, not a dependency orders failed to declare.
    assert "orders → registry" not in soup.select_one("ul.observed").get_text()
    assert "orders → inventory" in soup.select_one("ul.observed").get_text()


def test_the_json_has_the_same_lookups_and_fail_overs(settings, store, tracer_provider_factory):
    trace_id = pattern_spans.discovery_failover(tracer_provider_factory)
    client = create_app(settings.replace(registry_url=UNREACHABLE), store=store).test_client()

    doc = json.loads(client.get("/api/v1/registry?window=15m").get_data())

    assert doc["lookups"] == [{"caller": "orders", "count": 1, "error_count": 0}]
    [failover] = doc["failovers"]
    assert failover["trace_id"] == trace_id
    named = (failover["service"], failover["callee"], failover["instance_id"], failover["next_instance_id"])
    assert named == ("orders", "inventory", "inventory-1", "inventory-2")
    assert failover["reason"] == "connection refused"


def test_a_quiet_window_says_no_lookup_and_no_fail_over(settings, store):
    client = create_app(settings.replace(registry_url=UNREACHABLE), store=store).test_client()

    soup = BeautifulSoup(client.get("/registry/instances?window=15m").get_data(as_text=True), "html.parser")

    assert "No lookup reached the registry" in soup.select_one("table.lookups").get_text()
    assert "No call failed over" in soup.select_one("table.failovers").get_text()
