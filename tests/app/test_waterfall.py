"""The waterfall shows what the patterns did: event markers, badges, Find over events and
status messages, the order of "Next error", duration labels and the minimap (server HTML)."""

from __future__ import annotations

import json

import pytest
from bs4 import BeautifulSoup

PATTERNS = f"{0x70:032x}"
THROTTLED = f"{0x71:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


@pytest.fixture
def page(client, post_trace):
    """The patterns trace's page, parsed."""
    post_trace("patterns")
    response = client.get(f"/traces/{PATTERNS}")
    assert response.status_code == 200
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def row(doc: BeautifulSoup, n: int):
    found = doc.select_one(f"#row-{sid(n)}")
    assert found is not None, f"no row for span {n}"
    return found


def badges(doc: BeautifulSoup, n: int) -> dict[str, str]:
    return {b["class"][1]: b.get_text() for b in row(doc, n).select(":scope > .wf-line .badge")}


def markers(doc: BeautifulSoup, n: int) -> list:
    return row(doc, n).select(":scope > .wf-line .wf-event")


def detail(doc: BeautifulSoup, marker) -> str:
    described = doc.find(id=marker["aria-describedby"])
    assert described is not None and described.find_parent("button") is marker
    return described.get_text(" ", strip=True)


def test_a_breaker_state_change_is_a_focusable_marker_on_its_bar_with_the_event(page):
    (marker,) = markers(page, 10)
    assert marker.name == "button" and "ev-breaker" in marker["class"]
    assert marker.get("tabindex") != "-1"
    assert marker["aria-label"] == "circuit_breaker.state_change +85ms"
    assert float(marker["style"].split(":")[1]) == pytest.approx(149 / 300, abs=1e-6)
    text = detail(page, marker)
    assert "circuit_breaker.state_change" in text and "+85ms into the span" in text
    assert "orders->payment: closed → open after 5 failures" in text
    assert "circuit_breaker.failure_count 5" in text


def test_exceptions_failovers_and_retries_are_marked_on_their_bars(page):
    assert [m["class"][1] for m in markers(page, 9)] == ["ev-exception"]
    assert "UpstreamError: payment unavailable" in detail(page, markers(page, 9)[0])
    (failover,) = markers(page, 7)
    assert "ev-failover" in failover["class"]
    assert "left inventory-1: connection <refused>; trying inventory-2" in detail(page, failover)
    (retry,) = markers(page, 13)
    assert "ev-retry" in retry["class"] and "attempt 1 failed; retrying (inventory busy)" in detail(page, retry)
    assert markers(page, 5) == [], "a span without events has no marker"


def test_marker_text_is_escaped(client, post_trace):
    post_trace("patterns")
    body = client.get(f"/traces/{PATTERNS}").get_data(as_text=True)
    assert "connection &lt;refused&gt;" in body and "<refused>" not in body


def test_the_call_an_open_breaker_refused_carries_rejected_and_its_retry_number(page):
    assert badges(page, 12) == {
        "badge-rejected": "rejected: breaker open",
        "badge-retry": "retry 1",
        "badge-instance": "orders-1",
    }
    assert "orders->payment" in row(page, 12).select_one(".badge-rejected")["title"]
    assert "badge-rejected" not in badges(page, 10), "the call that failed was sent: not rejected"


def test_compensation_steps_are_badged_and_actions_are_not(page):
    assert badges(page, 13)["badge-compensation"] == "compensation"
    assert badges(page, 13)["badge-retry"] == "retry 1"
    assert badges(page, 14)["badge-compensation"] == "compensation"
    assert "badge-compensation" not in badges(page, 6)


def test_every_span_shows_its_instance(page):
    instances = {r["data-span-id"]: r.select_one(".badge-instance").get_text() for r in page.select(".wf-row")}
    assert instances[sid(8)] == "inventory-2" and instances[sid(11)] == "payment-1"
    assert instances[sid(1)] == "gateway-1" and len(instances) == 14


def test_a_throttled_request_says_429_rate_limited(client, post_trace):
    post_trace("patterns")
    doc = BeautifulSoup(client.get(f"/traces/{THROTTLED}").get_data(as_text=True), "html.parser")
    assert badges(doc, 1) == {"badge-throttled": "429 rate limited", "badge-instance": "gateway-1"}


def test_find_matches_status_messages_and_events(client, post_trace):
    post_trace("patterns")
    for query, expected in [("declined", {11}), ("state_change", {10}), ("inventory busy", {13}), ("failover", {7})]:
        response = client.get(f"/traces/{PATTERNS}?q={query}", headers={"HX-Request": "true"})
        doc = BeautifulSoup(response.get_data(as_text=True), "html.parser")
        assert {r["data-span-id"] for r in doc.select(".wf-row.is-match")} == {sid(n) for n in expected}, query


def test_next_error_starts_from_the_deepest_error(page):
    order = json.loads(page.select_one("[data-waterfall]")["data-error-order"])
    assert order[0] == [sid(11), 10]
    assert [span_id for span_id, _ in order] == [sid(n) for n in (11, 12, 10, 9, 4, 2)]
    assert page.select_one("button[data-nav-error][data-dir='1']").get_text() == "Next error"


def test_rows_and_bars_open_their_span(page):
    for r in page.select(".wf-row"):
        line = r.select_one(":scope > .wf-line")
        assert line.has_attr("data-open-span")
        assert line.select_one(".wf-name")["hx-target"] == f"#panel-{r['data-span-id']}"


def test_duration_labels_go_beside_their_bar_or_inside_a_bar_that_fills_the_track(page):
    sides = {r["data-span-id"]: r.select_one(".wf-dur")["class"][1] for r in page.select(".wf-row")}
    assert sides[sid(1)] == "at-inside", "the root fills the track"
    assert sides[sid(5)] == "at-right", "an early short span has room after it"
    assert sides[sid(14)] == "at-left", "a late span has room before it"


def test_a_one_span_trace_gets_a_thin_bar_in_the_middle_of_its_minimap(client, post_trace):
    post_trace("patterns")
    doc = BeautifulSoup(client.get(f"/traces/{THROTTLED}").get_data(as_text=True), "html.parser")
    minimap = doc.select_one("svg[data-minimap]")
    assert minimap["viewbox"] == "0 0 1000 16"
    (bar,) = minimap.select("rect:not(.mm-window)")
    assert (bar["x"], bar["y"], bar["width"], bar["height"]) == ("0.0", "7.5", "1000.0", "1")


def test_next_error_can_fetch_every_row_up_to_an_error_not_loaded_yet(client, post_trace):
    post_trace("huge")
    response = client.get(f"/traces/{0x50:032x}/rows?offset=300&through=2500", headers={"HX-Request": "true"})
    doc = BeautifulSoup(response.get_data(as_text=True), "lxml")
    assert len(doc.select(".wf-row")) == 2201
    assert "offset=2501" in doc.select_one(".wf-more")["hx-get"]
    assert client.get(f"/traces/{0x50:032x}/rows?offset=300&through=-4").status_code == 400


def test_a_spans_details_repeat_its_badges(client, post_trace):
    post_trace("patterns")
    response = client.get(f"/traces/{PATTERNS}/spans/{sid(12)}", headers={"HX-Request": "true"})
    doc = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    shown = [b.get_text() for b in doc.select(".span-panel h3 .badge")]
    assert shown == ["rejected: breaker open", "retry 1", "orders-1"]
