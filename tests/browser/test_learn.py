"""Learning in a real browser: /learn with its drawings, the overview, and the "What you
are seeing" explanations opening (and staying open while the page refreshes itself).
Screenshots go to test-output/."""

from __future__ import annotations

import pytest

from tests.app import pattern_spans
from tests.browser.conftest import OUTPUT

pytestmark = pytest.mark.browser


def shot(page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / name), full_page=True)


def test_learn_shows_every_topic_with_its_drawings_and_its_toc_jumps(page, live_server):
    page.goto(live_server + "/")
    page.locator("header.top nav a", has_text="Learn").click()
    page.wait_for_url(live_server + "/learn")
    assert page.locator("section.topic").count() == 13
    drawings = page.locator("svg.drawing")
    assert drawings.count() == 6
    for i in range(drawings.count()):
        box = drawings.nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
    assert page.get_by_role("img", name="The states of a circuit breaker").is_visible()
    page.locator("nav.toc a", has_text="Saga").click()
    page.wait_for_url("**/learn#topic-saga")
    assert page.locator("#topic-saga h2").is_visible()
    shot(page, "learn.png")


def test_the_overview_shows_health_moments_latest_traces_and_what_to_try(page, live_server, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory, fail_payment=True)
    pattern_spans.breaker_opens(tracer_provider_factory)
    pattern_spans.saga(tracer_provider_factory, "order-7", ["create", "reserve_payment", "ship"], 1)
    pattern_spans.failover(tracer_provider_factory, "orders", "inventory-1", "connection refused")
    page.goto(live_server + "/")
    assert page.locator("table.health tr.service[data-service='payment'] td.errors").inner_text() == "100.0% (4)"
    assert "orders->payment" in page.locator("ul.open-breakers").inner_text()
    assert "reserve_payment" in page.locator("ul.compensations").inner_text()
    assert "orders left inventory-1" in page.locator("ul.failovers").inner_text()
    assert page.locator("section.latest-traces table.traces tbody tr").count() >= 4
    assert page.locator("#what-to-try li").count() == 7
    shot(page, "overview.png")
    page.locator("table.health a", has_text="payment").click()
    page.wait_for_url("**/services/node?name=payment*")
    assert "POST /charge" in page.locator("table.operations").inner_text()


def test_an_opened_explanation_stays_open_while_its_sentence_refreshes(page, live_server, tracer_provider_factory):
    page.clock.install()
    pattern_spans.order_flow(tracer_provider_factory)
    page.goto(live_server + "/breakers")
    details = page.locator("details.explain")
    assert not details.evaluate("d => d.open")
    details.locator("summary").click()
    assert details.evaluate("d => d.open")
    now = details.locator(".right-now")
    assert now.is_visible()
    assert "orders->payment, is closed" in now.inner_text()
    shot(page, "breakers-explained.png")
    pattern_spans.breaker_opens(tracer_provider_factory)
    page.clock.run_for(5_000)
    page.locator(".right-now", has_text="1 breaker is open: orders->payment").wait_for(timeout=10_000)
    assert details.evaluate("d => d.open"), "the refresh closed the explanation"


@pytest.mark.parametrize("path", ["/services", "/sagas", "/registry"])
def test_each_pattern_page_explanation_opens(page, live_server, tracer_provider_factory, path):
    pattern_spans.saga(tracer_provider_factory, "s-1", ["create", "pay"], 1)
    page.goto(live_server + path)
    summary = page.locator("details.explain summary")
    assert summary.inner_text().startswith("What you are seeing")
    summary.click()
    body = page.locator("details.explain .explain-body")
    body.wait_for()
    assert "The trade-off." in body.inner_text() and page.locator("details.explain .now").inner_text()


def test_the_gateway_panel_explains_the_gateway(page, live_server, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    page.goto(live_server + "/services")
    page.locator("a.node-link[data-node='gateway']").click()
    panel = page.locator("#detail .node-detail[data-node='gateway']")
    panel.wait_for()
    panel.locator("details.explain summary").click()
    assert "gateway served 1 request" in panel.locator(".right-now").inner_text()
    shot(page, "gateway-panel.png")
