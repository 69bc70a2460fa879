"""Every pattern page opens with "What you are seeing": the pattern, the problem it solves,
its trade-off, and a "right now" sentence computed from the page's own figures."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

from app import create_app
from app.topics import PAGE_TOPICS, TOPICS
from tests.app import pattern_spans

HOSTILE = "<img src=x onerror=alert(1)>"
PAGES = {"services": "/services", "breakers": "/breakers", "sagas": "/sagas", "registry": "/registry"}


def html(client, path: str, **headers: str) -> BeautifulSoup:
    r = client.get(path, headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return BeautifulSoup(r.get_data(as_text=True), "html.parser")


def explanation(soup: BeautifulSoup, topic: str) -> dict[str, str]:
    """The parts of one explanation, by their lead-in, and its 'right now' sentence."""
    [details] = soup.select(f"details.explain[data-topic='{topic}']")
    assert details.select_one("summary").get_text().startswith("What you are seeing: ")
    assert not details.has_attr("open"), "explanations start closed"
    parts = {p.strong.get_text(): p.get_text(" ", strip=True) for p in details.select(".explain-body p") if p.strong}
    parts["now"] = details.select_one(f".right-now #now-{topic}").get_text()
    return parts


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_pattern_page_explains_its_pattern_with_a_right_now_sentence(client, page):
    topic = TOPICS[PAGE_TOPICS[page]]
    parts = explanation(html(client, PAGES[page]), topic.key)
    assert set(parts) == {"The pattern.", "The problem it solves.", "The trade-off.", "Right now.", "now"}
    assert parts["The pattern."] == f"The pattern. {topic.what}"
    assert parts["The problem it solves."] == f"The problem it solves. {topic.problem}"
    assert parts["The trade-off."] == f"The trade-off. {topic.tradeoff}"
    assert parts["now"] and parts["Right now."] == f"Right now. {parts['now']}"


def test_the_graph_says_how_many_services_which_has_most_errors_and_the_longest_chain(
    client, tracer_provider_factory
):
    pattern_spans.order_flow(tracer_provider_factory)
    pattern_spans.order_flow(tracer_provider_factory, fail_payment=True)
    now = explanation(html(client, "/services"), "microservices")["now"]
    assert now == (
        "5 services and 2 databases or peers, joined by 4 call paths (1 asynchronous, dashed). "
        "payment has the most errors: 50.0% of its 2 requests. "
        "The longest synchronous chain has 2 hops: gateway → orders → inventory."
    )


def test_the_breakers_page_names_the_open_breaker_and_what_it_refused(client, tracer_provider_factory):
    pattern_spans.breaker_opens(tracer_provider_factory, failures=3, rejected=2)
    now = explanation(html(client, "/breakers"), "circuit-breaker")["now"]
    assert now == (
        "1 breaker is open: orders->payment (2 calls refused); calls to them fail at once. "
        "Breakers opened once in the window."
    )


def test_closed_breakers_are_said_to_let_calls_through(client, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    now = explanation(html(client, "/breakers"), "circuit-breaker")["now"]
    assert now == "The one breaker, orders->payment, is closed: calls go through, none failed."


def test_the_sagas_page_counts_outcomes_and_names_the_latest_compensated(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "ok-1", ["create", "pay"], None)
    pattern_spans.saga(tracer_provider_factory, "comp-1", ["create", "pay"], 1)
    now = explanation(html(client, "/sagas"), "saga")["now"]
    assert now == (
        "Of 2 sagas, 1 completed, 1 was compensated, 0 failed (a compensation itself failed) and 0 are still "
        "running. The latest listed that did not complete: comp-1, compensated after step pay failed."
    )


def test_the_registry_page_says_which_instances_served_before_asking_the_registry(
    settings, store, tracer_provider_factory
):
    pattern_spans.order_flow(tracer_provider_factory, inventory_instance="inventory-1")
    pattern_spans.order_flow(tracer_provider_factory, inventory_instance="inventory-2")
    pattern_spans.order_flow(tracer_provider_factory, inventory_instance="inventory-2")
    client = create_app(settings.replace(registry_url="http://127.0.0.1:9"), store=store).test_client()
    now = explanation(html(client, "/registry"), "service-discovery")["now"]
    assert re.fullmatch(r"\d+ instances of \d+ services served requests\. .*", now), now
    assert now.endswith(" inventory spread its requests over 2: inventory-1 (1), inventory-2 (2).")
    fragment = html(client, "/registry/instances")
    oob = fragment.select_one("#now-service-discovery")
    assert oob["hx-swap-oob"] == "true"
    assert oob.get_text().startswith("The registry did not answer, so only the traffic seen in traces shows")


def test_the_gateway_panel_explains_the_gateway_and_says_what_it_let_through(client, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    soup = html(client, "/services/node?name=gateway")
    now = explanation(soup, "api-gateway")["now"]
    assert now == "gateway served 1 request (0.067/min), none throttled, 0 failed."
    assert html(client, "/services/node?name=payment").select("details.explain") == []


@pytest.mark.parametrize(
    ("path", "topic"), [("/services", "microservices"), ("/breakers", "circuit-breaker"), ("/sagas", "saga")]
)
def test_a_refresh_updates_the_sentence_out_of_band_and_leaves_the_details_alone(
    client, tracer_provider_factory, path, topic
):
    pattern_spans.breaker_opens(tracer_provider_factory)
    fragment = html(client, path, **{"HX-Request": "true"})
    assert fragment.select("details.explain") == [], "a refresh must not replace (and close) the explanation"
    [oob] = fragment.select(f"#now-{topic}")
    assert oob["hx-swap-oob"] == "true"
    assert oob.get_text() == explanation(html(client, path), topic)["now"]
    page = html(client, path)
    assert len(page.select(f"#now-{topic}")) == 1 and not page.select_one(f"#now-{topic}").has_attr("hx-swap-oob")


def test_names_in_the_sentences_are_escaped(client, tracer_provider_factory):
    orders = pattern_spans.tracer(tracer_provider_factory, HOSTILE)
    refused = {"circuit_breaker.name": HOSTILE, "circuit_breaker.state": "open", "circuit_breaker.rejected": True}
    with orders.start_as_current_span("call", attributes=refused):
        pass
    pattern_spans.saga(tracer_provider_factory, HOSTILE, ["create", "pay"], 1)
    for path in ("/breakers", "/sagas", "/services"):
        text = client.get(path).get_data(as_text=True)
        assert "<img src=x" not in text, path
    assert HOSTILE in explanation(html(client, "/breakers"), "circuit-breaker")["now"]
    assert HOSTILE in explanation(html(client, "/sagas"), "saga")["now"]


def test_each_explanation_links_its_scenarios_and_its_learn_topic(client):
    for page, path in PAGES.items():
        topic = TOPICS[PAGE_TOPICS[page]]
        [details] = html(client, path).select("details.explain")
        hrefs = [a["href"] for a in details.select("a")]
        assert hrefs == [f"/chaos#scenario-{s}" for s in topic.scenarios] + [f"/learn#topic-{topic.key}"]
