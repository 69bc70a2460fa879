"""Pattern views in a real browser: clicking a graph node, a breaker transition, a saga step."""

from __future__ import annotations

import pytest

from tests.app import pattern_spans

pytestmark = pytest.mark.browser


def test_clicking_a_graph_node_shows_its_operations(page, live_server, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory, fail_payment=True)
    page.goto(live_server + "/services")
    page.locator("a.node-link[data-node='payment']").click()
    detail = page.locator("#detail .node-detail[data-node='payment']")
    detail.wait_for()
    assert "POST /charge" in detail.locator("table.operations").inner_text()
    assert page.url == live_server + "/services", "the node opened as a new page instead of in the panel"


def test_clicking_a_graph_edge_lists_its_traces(page, live_server, tracer_provider_factory):
    trace_id = pattern_spans.order_flow(tracer_provider_factory)
    page.goto(live_server + "/services")
    page.locator("a.edge-link[data-parent='orders'][data-child='payment'] g.label").click()
    links = page.locator("#detail .edge-detail ul.edge-traces a")
    links.first.wait_for()
    assert links.first.get_attribute("href") == f"/traces/{trace_id}"


def test_clicking_a_breaker_transition_opens_its_trace(page, live_server, tracer_provider_factory):
    trace_id, span_id = pattern_spans.breaker_opens(tracer_provider_factory)
    page.goto(live_server + "/breakers")
    with page.expect_navigation():
        page.locator("tr.breaker a.mark").first.click(force=True)
    assert page.url == f"{live_server}/traces/{trace_id}?span={span_id}"


def test_clicking_a_saga_step_opens_its_span(page, live_server, tracer_provider_factory):
    trace_id = pattern_spans.saga(tracer_provider_factory, "b-1", ["create", "pay", "ship"], 1)
    page.goto(live_server + "/sagas")
    page.locator("table.sagas a", has_text="b-1").click()
    page.locator(".saga-timeline").wait_for()
    assert "compensated, in reverse order" in page.locator(".verdict").inner_text()
    bar = page.locator("a.bar.phase-compensation").first
    span_id = bar.get_attribute("data-span")
    with page.expect_navigation():
        bar.click()
    assert page.url == f"{live_server}/traces/{trace_id}?span={span_id}"
