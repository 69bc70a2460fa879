"""The landing page: service health, what the patterns did, latest traces, what to try."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from app.scenarios import SCENARIOS
from tests.app import pattern_spans
from tests.collectors.test_store import checkout, res, span

HOSTILE = "<img src=x onerror=alert(1)>"


def soup_of(client, path: str = "/") -> BeautifulSoup:
    r = client.get(path)
    assert r.status_code == 200, r.get_data(as_text=True)
    return BeautifulSoup(r.data, "html.parser")


def test_each_service_is_a_link_with_its_rate_errors_and_p99(client, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    pattern_spans.order_flow(tracer_provider_factory, fail_payment=True)
    soup = soup_of(client)
    rows = {tr["data-service"]: tr for tr in soup.select("table.health tr.service")}
    assert set(rows) == {"gateway", "orders", "payment", "inventory", "notifications"}
    payment = rows["payment"]
    assert "health-bad" in payment["class"]
    assert payment.select_one("td.errors").get_text(" ", strip=True) == "50.0% (1)"
    assert payment.select_one("td.rate").get_text() == f"{2 / 900:.2f}"
    assert payment.select_one("td.p99").get_text().endswith(("µs", "ms"))
    assert payment.select_one("a")["href"] == "/services/node?name=payment&window=15m&ago=0"
    assert "health-ok" in rows["inventory"]["class"]
    assert rows["inventory"].select_one("td.errors").get_text(" ", strip=True) == "0.0% (0)"


def test_a_service_without_requests_in_the_window_is_idle_and_links_to_its_traces(client, store):
    store.write_spans(checkout(1))  # spans of 2020: long before the window
    rows = {tr["data-service"]: tr for tr in soup_of(client).select("table.health tr.service")}
    assert set(rows) == {"frontend", "backend"}
    assert "health-idle" in rows["backend"]["class"]
    assert rows["backend"].select_one("td.errors").get_text() == "idle"
    assert rows["backend"].select_one("a")["href"] == "/traces?service=backend"


def test_open_breakers_are_listed_with_their_refused_calls(client, tracer_provider_factory):
    pattern_spans.breaker_opens(tracer_provider_factory, failures=3, rejected=2)
    soup = soup_of(client)
    [item] = soup.select("ul.open-breakers li")
    assert item["data-name"] == "orders->payment"
    text = item.get_text(" ", strip=True)
    assert "open" in item.select_one(".state").get_text()
    assert "orders → payment" in text and "2 calls refused" in text
    assert item.select_one("a")["href"] == "/breakers?window=15m&ago=0"


def test_compensated_sagas_show_the_failed_step_and_its_reason(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "ok-1", ["create", "pay", "ship"], None)
    pattern_spans.saga(tracer_provider_factory, "bad-1", ["create", "pay", "ship"], 1)
    soup = soup_of(client)
    [item] = soup.select("ul.compensations li")
    assert item["data-saga"] == "bad-1"
    assert item.select_one("a")["href"] == "/sagas/bad-1"
    assert item.select_one("strong").get_text() == "pay"
    assert item.select_one(".reason").get_text() == "pay failed"
    assert item.select_one(".outcome").get_text() == "compensated"


def test_failovers_name_the_instance_left_and_open_the_span(client, tracer_provider_factory):
    trace_span = pattern_spans.failover(tracer_provider_factory, "orders", "inventory-2", "connection refused")
    soup = soup_of(client)
    [item] = soup.select("ul.failovers li")
    link = item.select_one("a")
    assert link.get_text() == "orders left inventory-2"
    assert link["href"].endswith(f"?span={trace_span}")
    assert item.select_one(".reason").get_text() == "connection refused"


def test_a_failover_names_the_instance_it_went_on_to(client, tracer_provider_factory):
    caller = pattern_spans.tracer(tracer_provider_factory, "orders")
    with caller.start_as_current_span("POST inventory") as call:
        moved = {"discovery.instance.id": "inventory-1", "discovery.next_instance.id": "inventory-2"}
        call.add_event("discovery.failover", {**moved, "discovery.failover.reason": "503 out of service"})
    [item] = soup_of(client).select("ul.failovers li")
    assert item.get_text(" ", strip=True).startswith("orders left inventory-1 for inventory-2: 503 out of service")


def test_a_quiet_store_says_nothing_happened(client):
    soup = soup_of(client)
    empty = soup.select_one("section.service-health .empty")
    assert empty.get_text(" ", strip=True).startswith("No service has sent spans yet: point an OpenTelemetry SDK")
    assert empty.code.get_text().endswith("/v1/traces") and empty.a["href"] == "/chaos"
    assert [p.get_text() for p in soup.select("section.moments p.empty")] == [
        "None: every breaker seen lets calls through. Inventory slow opens one.",
        "None: every saga that started completed (or is still running). Payment declined makes one compensate.",
        "None: every call reached the first instance it tried.",
    ]
    assert soup.select_one("section.latest-traces .empty").get_text(" ", strip=True).startswith("No traces yet:")
    suggested = [a["href"] for a in soup.select("section.moments p.empty a")]
    assert suggested == ["/chaos#scenario-inventory-slow", "/chaos#scenario-payment-declined"]
    chaos = BeautifulSoup(client.get("/chaos").data, "html.parser")
    assert all(chaos.select_one(f"#{href.split('#')[1]}") is not None for href in suggested)


def test_the_latest_traces_stay_and_span_text_is_escaped(client, store, tracer_provider_factory):
    store.write_spans(checkout(1, error=True))
    store.write_spans([span(2, 1, None, res(HOSTILE), "<script>x</script>")])
    pattern_spans.saga(tracer_provider_factory, HOSTILE, ["<b>create</b>", "pay"], 0)
    pattern_spans.failover(tracer_provider_factory, HOSTILE, HOSTILE, "<script>y</script>")
    r = client.get("/")
    html = r.get_data(as_text=True)
    assert "<img src=x" not in html and "<script>x" not in html and "<script>y" not in html and "<b>create" not in html
    soup = BeautifulSoup(html, "html.parser")
    assert HOSTILE in [tr["data-service"] for tr in soup.select("table.health tr.service")]
    assert soup.select_one("ul.compensations strong").get_text() == "<b>create</b>"
    assert soup.select_one("ul.failovers .reason").get_text() == "<script>y</script>"
    marked = {
        row.select_one("a")["href"].rsplit("/", 1)[-1]: "has-error" in row.get("class", [])
        for row in soup.select("section.latest-traces table.traces tbody tr")
    }
    assert marked[f"{1:032x}"] is True and marked[f"{2:032x}"] is False


def test_what_to_try_links_every_scenario_to_the_chaos_lab(client):
    soup = soup_of(client)
    links = {li["data-scenario"]: li.select_one("a")["href"] for li in soup.select("#what-to-try li")}
    assert links == {name: f"/chaos#scenario-{name}" for name in SCENARIOS}
    assert client.get("/chaos").status_code == 200


def test_the_live_part_refreshes_as_a_fragment_and_a_past_window_stays_put(client):
    r = client.get("/", headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert b"<html" not in r.data and b"What to try" not in r.data
    assert b"No service has sent spans yet:" in r.data
    live = soup_of(client).select_one("#overview-live")
    assert live["hx-get"] == "/?window=15m&ago=0" and live["hx-trigger"] == "every 5s"
    assert not soup_of(client, "/?window=1h&ago=30").select_one("#overview-live").has_attr("hx-get")


@pytest.mark.parametrize("query", ["window=banana", "ago=-1"])
def test_a_bad_window_is_a_400(client, query):
    r = client.get(f"/?{query}")
    assert r.status_code == 400


def test_health(client):
    assert client.get("/health").json == {"status": "ok"}
