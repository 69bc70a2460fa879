"""The trace page's events tab over HTTP: every span event in time order with its span,
kinds to pick exceptions and pattern events by, escaped text, a bounded list with a
"show all", empty states that say what to do, the current tab marked, and 400s and 404s
with a message."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from tests.helpers import json_request

PATTERNS = f"{0x70:032x}"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def sid(n: int) -> str:
    return f"{n:016x}"


def html(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


@pytest.fixture
def events(client, post_trace):
    """The events tab of the patterns trace for a query, parsed."""
    post_trace("patterns")

    def get(query: str = "", **headers: str) -> BeautifulSoup:
        response = client.get(f"/traces/{PATTERNS}/events?{query}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return html(response)

    return get


def post(client, trace: int, spans: list[dict], service: str = "clock") -> None:
    body = json_request([{"service": service, "spans": spans}])
    response = client.post("/v1/traces", data=body, content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)


def one_span(trace: int, events: list[tuple], name: str = "chatty", n: int = 1, parent: int | None = None) -> dict:
    return {
        "trace_id": f"{trace:032x}",
        "span_id": sid(n),
        "parent": sid(parent) if parent else None,
        "name": name,
        "start": T0,
        "end": T0 + 10 * MS,
        "events": events,
    }


def listed(doc: BeautifulSoup) -> list[tuple[str, str, str]]:
    return [
        (r.select_one("td.num").get_text(), r["data-span-id"], r.select_one("strong").get_text())
        for r in doc.select(".ev-row")
    ]


def test_every_event_of_the_trace_in_time_order_with_its_span(events):
    doc = events()
    assert listed(doc) == [
        ("+30ms", sid(7), "discovery.failover"),
        ("+149ms", sid(10), "circuit_breaker.state_change"),
        ("+199ms", sid(9), "exception"),
        ("+220ms", sid(13), "saga.compensation.retry"),
    ]
    breaker = doc.select(".ev-row")[1]
    assert breaker.select_one(".svc-chip").get_text() == "orders"
    link = breaker.select_one("a.ev-span")
    assert link.get_text() == "POST payment"
    assert link["href"] == f"/traces/{PATTERNS}?span={sid(10)}#row-{sid(10)}"
    assert "orders->payment: closed → open after 5 failures" in breaker.get_text()
    assert "circuit_breaker.failure_count 5" in breaker.select_one(".ev-attrs").get_text()
    assert [k.get_text() for k in doc.select(".ev-row")[3].select(".ev-kind")] == ["retry", "compensation"]


def test_the_tabs_mark_the_view_shown_and_the_waterfall_links_to_the_events(client, events):
    doc = events()
    tabs = doc.select(".trace-tabs a")
    assert [a.get_text() for a in tabs] == ["Waterfall", "Statistics", "Events and logs"]
    assert [a.get_text() for a in doc.select(".trace-tabs a[aria-current=page]")] == ["Events and logs"]
    for path, current in (("", "Waterfall"), ("/stats", "Statistics")):
        page = html(client.get(f"/traces/{PATTERNS}{path}"))
        assert [a.get_text() for a in page.select(".trace-tabs a[aria-current=page]")] == [current]
        assert page.select_one(".trace-tabs a[data-tab=events]")["href"] == f"/traces/{PATTERNS}/events"


def test_the_htmx_fragment_has_no_page_and_carries_the_tabs_out_of_band(events):
    doc = events("kind=breaker", **{"HX-Request": "true"})
    assert doc.find("html") is None and doc.select_one(".trace-header") is None
    assert len(doc.select(".ev-row")) == 1
    tabs = doc.select_one("nav#trace-tabs")
    assert tabs["hx-swap-oob"] == "true"
    assert tabs.select_one("a[aria-current=page]").get_text() == "Events and logs"


def test_a_waterfall_fragment_moves_the_current_tab_back(events, client):
    fragment = html(client.get(f"/traces/{PATTERNS}?status=error", headers={"HX-Request": "true"}))
    tabs = fragment.select_one("nav#trace-tabs[hx-swap-oob]")
    assert tabs.select_one("a[aria-current=page]").get_text() == "Waterfall"
    assert tabs.select_one("a[data-tab=events]")["href"] == f"/traces/{PATTERNS}/events?status=error"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("exception", ["exception"]),
        ("breaker", ["circuit_breaker.state_change"]),
        ("failover", ["discovery.failover"]),
        ("retry", ["saga.compensation.retry"]),
        ("compensation", ["saga.compensation.retry"]),
    ],
)
def test_exceptions_and_pattern_events_are_picked_by_kind(events, kind, expected):
    doc = events(f"kind={kind}")
    assert [name for _, _, name in listed(doc)] == expected
    assert doc.select_one(f".pill[data-kind={kind}]")["aria-current"] == "true"
    assert doc.select_one(".pill:not([data-kind])").get("aria-current") is None


def test_the_kind_pills_count_the_events(events):
    pills = {p.get("data-kind", "all"): p.get_text() for p in events().select(".wf-pills .pill")}
    assert pills["all"] == "All (4)" and pills["retry"] == "Retries (1)"
    assert pills["compensation"] == "Compensation (1)" and "event" not in pills, "kinds without events are left out"


def test_a_kind_without_events_says_so_and_links_to_every_event(events):
    doc = events("kind=event")
    assert doc.select(".ev-row") == []
    assert doc.select_one(".pill[data-kind=event]").get_text() == "Other events (0)"
    empty = doc.select_one("p.empty")
    assert "No event of this kind" in empty.get_text()
    assert empty.select_one("a")["href"] == f"/traces/{PATTERNS}/events"
    assert empty.select_one("a").get_text() == "show all 4 events"


def test_a_trace_without_events_says_so_and_leads_back_to_the_waterfall(client):
    post(client, 0x7A, [one_span(0x7A, [])])
    doc = html(client.get(f"/traces/{0x7A:032x}/events"))
    empty = doc.select_one("p.empty")
    assert "No span of this trace recorded an event" in empty.get_text()
    assert empty.select_one("a")["href"] == f"/traces/{0x7A:032x}"
    assert doc.select_one(".events-table") is None


def test_the_span_filter_and_skew_choice_are_kept_but_an_events_span_link_drops_the_filter(events):
    doc = events("status=error&skew=off")
    kept = "skew=off&status=error"
    assert doc.select_one(".trace-tabs a[data-tab=waterfall]")["href"] == f"/traces/{PATTERNS}?{kept}"
    assert doc.select_one(".pill[data-kind=retry]")["href"] == f"/traces/{PATTERNS}/events?{kept}&kind=retry"
    span_link = doc.select_one(".ev-row a.ev-span")["href"]
    assert span_link == f"/traces/{PATTERNS}?span={sid(7)}&skew=off#row-{sid(7)}", "the filter could hide the span"


def test_event_and_span_text_is_escaped(client):
    hostile = "<img src=x onerror=alert(1)>"
    event = (T0 + MS, hostile, {"<b>key</b>": "<script>alert(2)</script>", "exception.type": "<i>Boom</i>"})
    post(client, 0x7B, [one_span(0x7B, [event], name="<svg onload=alert(3)>")], service="<u>svc</u>")
    response = client.get(f"/traces/{0x7B:032x}/events")
    body = response.get_data(as_text=True)
    for raw in (hostile, "<b>key</b>", "<script>alert(2)</script>", "<svg onload", "<u>svc</u>"):
        assert raw not in body, raw
    for escaped in ("&lt;img src=x onerror=alert(1)&gt;", "&lt;b&gt;key&lt;/b&gt;", "&lt;script&gt;alert(2)&lt;"):
        assert escaped in body, escaped
    row = html(response).select_one(".ev-row")
    assert row.select_one("strong").get_text() == hostile
    assert row.select_one("a.ev-span").get_text() == "<svg onload=alert(3)>"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("kind=<b>", "kind must be one of exception, breaker"),
        ("kind=Exception", "kind must be one of"),
        ("all=yes", "all must be 1"),
        ("min=soon", "min"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_bad_kind_or_all_is_a_400_naming_it(client, post_trace, query, words, htmx):
    post_trace("patterns")
    response = client.get(f"/traces/{PATTERNS}/events?{query}", headers={"HX-Request": "true"} if htmx else {})
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and words in body
    assert "<b>" not in body
    assert ("<html" in body) != htmx
    if htmx:
        assert response.headers["HX-Retarget"] == "#messages"


def test_an_unknown_trace_is_a_404_and_a_malformed_id_a_400(client, store):
    response = client.get(f"/traces/{'ab' * 16}/events")
    assert response.status_code == 404 and f"No trace {'ab' * 16} in the store" in response.get_data(as_text=True)
    response = client.get("/traces/not-hex/events")
    assert response.status_code == 400 and "trace id" in response.get_data(as_text=True)


def test_a_long_list_shows_the_first_500_then_all(client):
    """Two spans of 300 events each (ingest keeps at most 512 events of a span)."""
    ticks = [(T0 + i * 1000, f"tick {i}", {}) for i in range(300)]
    post(client, 0x78, [one_span(0x78, ticks, n=1), one_span(0x78, ticks, n=2, parent=1)])
    doc = html(client.get(f"/traces/{0x78:032x}/events"))
    assert len(doc.select(".ev-row")) == 500
    more = doc.select_one(".list-more")
    assert "first 500 of 600 events" in more.get_text()
    assert more.select_one("a")["href"] == f"/traces/{0x78:032x}/events?all=1"
    doc = html(client.get(more.select_one("a")["href"]))
    assert len(doc.select(".ev-row")) == 600 and doc.select_one(".list-more") is None
    names = [name for _, _, name in listed(doc)]
    assert names[:4] == ["tick 0", "tick 0", "tick 1", "tick 1"], "both spans' events, merged in time"
    picked = html(client.get(f"/traces/{0x78:032x}/events?kind=event"))
    assert picked.select_one(".list-more a")["href"] == f"/traces/{0x78:032x}/events?kind=event&all=1"
