"""The trace explorer over HTTP: every search filter, the trace page, its error paths."""

from __future__ import annotations

import json
import time

import pytest
from bs4 import BeautifulSoup, SoupStrainer

from app.jaeger import trace as jaeger_trace
from collectors.model import STATUS_ERROR, Resource, Span
from collectors.otlp import decode_json

MS = 1_000_000


def html(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def res(service: str) -> Resource:
    # The store deduplicates resources by their attributes, so service.name must be one of them.
    return Resource(service, {"service.name": service})


def make_trace(
    n: int,
    *,
    service: str = "gateway",
    name: str = "GET /",
    age_min: float = 1,
    duration_ms: float = 10,
    children: int = 0,
    errors: int = 0,
    attrs: dict | None = None,
    child_service: str = "orders",
    now: int | None = None,
) -> list[Span]:
    """A trace that started ``age_min`` minutes before ``now`` (by default, the moment of the call)."""
    trace_id = f"{n:032x}"
    start = (now or time.time_ns()) - int(age_min * 60_000 * MS)
    root = Span(
        trace_id,
        f"{1:016x}",
        "",
        name,
        2,
        start,
        start + int(duration_ms * MS),
        res(service),
        attributes=attrs or {},
        status_code=STATUS_ERROR if errors else 0,
    )
    kids = [
        Span(
            trace_id,
            f"{i + 2:016x}",
            root.span_id,
            f"child {i}",
            1,
            start + i * MS,
            start + (i + 1) * MS,
            res(child_service),
            status_code=STATUS_ERROR if i + 1 < errors else 0,
        )
        for i in range(children)
    ]
    return [root, *kids]


@pytest.fixture
def now() -> int:
    """The test's present, in nanoseconds: taken when the test starts, not at import."""
    return time.time_ns()


@pytest.fixture
def searchable(store, now):
    """Five recent traces with different services, durations, sizes and errors, one old one."""
    store.write_spans(make_trace(1, duration_ms=5, age_min=1, now=now))
    store.write_spans(make_trace(2, service="shop", name="POST /cart", duration_ms=900, age_min=2, children=3, now=now))
    store.write_spans(
        make_trace(
            3, duration_ms=300, age_min=3, children=8, errors=3, attrs={"http.response.status_code": 500}, now=now
        )
    )
    store.write_spans(make_trace(4, duration_ms=50, age_min=4, children=1, errors=1, now=now))
    store.write_spans(make_trace(5, duration_ms=2000, age_min=30, now=now))
    store.write_spans(make_trace(6, duration_ms=1, age_min=60 * 5, now=now))
    return store


def found(client, query: str) -> list[int]:
    response = client.get("/traces?" + query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [int(tr["data-trace-id"], 16) for tr in html(response).select("tr.trace-row")]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [1, 2, 3, 4, 5]),
        ("range=15m", [1, 2, 3, 4]),
        ("range=6h", [1, 2, 3, 4, 5, 6]),
        ("service=shop", [2]),
        ("service=orders", [2, 3, 4]),
        ("service=shop&operation=POST+%2Fcart", [2]),
        ("operation=child+0", [2, 3, 4]),
        ("tags=http.response.status_code%3D500", [3]),
        ("tags=error%3Dtrue", [3, 4]),
        ("status=error", [3, 4]),
        ("status=ok", [1, 2, 5]),
        ("min_duration=250ms", [2, 3, 5]),
        ("min_duration=250ms&max_duration=1.5s", [2, 3]),
        ("limit=2", [1, 2]),
        ("sort=slowest", [5, 2, 3, 4, 1]),
        ("sort=spans", [3, 2, 4, 1, 5]),
        ("sort=errors", [3, 4, 1, 2, 5]),
        ("sort=slowest&limit=1", [5]),
    ],
)
def test_search_filters(client, searchable, query, expected):
    assert found(client, query) == expected


def test_custom_range_searches_between_start_and_end(client, searchable, now):
    from datetime import UTC, datetime

    def fmt(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M")

    start, end = fmt(now - 6 * 3600 * 10**9), fmt(now - 3600 * 10**9)
    assert found(client, f"range=custom&start={start}&end={end}") == [6]


def test_search_page_keeps_the_filters_in_the_form_and_lists_what_each_trace_shows(client, searchable):
    response = client.get("/traces?service=orders&tags=error%3Dtrue&sort=errors&limit=5")
    doc = html(response)
    assert doc.select_one("select[name=service] option[selected]")["value"] == "orders"
    assert doc.select_one("input[name=tags]")["value"] == "error=true"
    assert doc.select_one("select[name=sort] option[selected]")["value"] == "errors"
    row = doc.select_one("tr.trace-row")
    cells = [td.get_text(" ", strip=True) for td in row.select("td:not(.pick-col)")]
    assert cells[0].startswith("gateway GET /") and cells[2] == "300ms"
    assert cells[3:5] == ["9", "3 orders: child 1: status ERROR, with no message"], "errors and why"
    assert [t.get_text() for t in row.select(".svc-tag")] == ["gateway", "orders"]
    assert row.select_one("a.trace-link")["href"] == f"/traces/{3:032x}"
    assert len(doc.select(".scatter a.dot.error")) == 1, "trace 4's error is not on an orders span"
    assert doc.select_one("form.search-form")["hx-push-url"] == "true"


def test_search_fragment_for_htmx_has_no_page_around_it(client, searchable):
    response = client.get("/traces?service=shop", headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body and "trace-row" in body
    assert "HX-Request" in response.headers["Vary"]


def test_live_mode_polls_the_same_search(client, searchable):
    doc = html(client.get("/traces?service=shop&live=1", headers={"HX-Request": "true"}))
    poll = doc.select_one("[data-live]")
    assert "every 5s" in poll["hx-trigger"]
    assert "service=shop" in poll["hx-get"] and "live=1" in poll["hx-get"]
    assert html(client.get("/traces?service=shop")).select_one("[data-live]") is None


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("limit=abc", "limit", "'abc'"),
        ("limit=-3", "limit", "'-3'"),
        ("min_duration=fast", "min_duration", "min duration"),
        ("max_duration=1parsec", "max_duration", "max duration"),
        ("min_duration=2s&max_duration=1s", "max_duration", "below min duration"),
        ("tags=novalue", "tags", "'novalue'"),
        ("tags=%22unclosed", "tags", "tags"),
        ("status=maybe", "status", "'maybe'"),
        ("sort=weirdest", "sort", "'weirdest'"),
        ("range=2d", "range", "'2d'"),
        ("range=custom", "range", "start is needed"),
        ("range=custom&start=yesterday", "range", "'yesterday'"),
        ("range=custom&start=2024-05-02T00:00&end=2024-05-01T00:00", "range", "before its start"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_bad_filter_gives_400_with_an_inline_message_naming_the_field(client, store, query, field, words, htmx):
    response = client.get("/traces?" + query, headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code == 400
    message = html(response).select_one(f".search-errors li[data-field={field}]")
    assert message is not None, response.get_data(as_text=True)
    assert words in message.get_text()
    assert ("<html" in response.get_data(as_text=True)) is not htmx


def test_operations_fragment_lists_a_services_operations(client, searchable):
    doc = html(client.get("/traces/operations?service=shop"))
    assert [o["value"] for o in doc.select("option")] == ["", "POST /cart"]


# -- the trace page ---------------------------------------------------------------------------


def tid(n: int) -> str:
    return f"{n:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def test_trace_header_shows_root_duration_services_depth_spans_and_errors(client, store):
    store.write_spans(make_trace(3, duration_ms=300, children=8, errors=3))
    doc = html(client.get(f"/traces/{tid(3)}"))
    assert doc.select_one(".trace-header h1").get_text(" ", strip=True) == "gateway GET /"
    facts = {dd["data-fact"]: dd.get_text(strip=True) for dd in doc.select("dd[data-fact]")}
    assert facts == {"duration": "300ms", "services": "2", "depth": "2", "spans": "9", "errors": "3"}
    assert len(doc.select(".wf-row")) == 9
    assert len(doc.select(".wf-row.is-error")) == 3


def test_unknown_trace_is_a_404_page_naming_the_id(client, store):
    response = client.get(f"/traces/{'ab' * 16}")
    assert response.status_code == 404
    assert f"No trace {'ab' * 16} in the store" in response.get_data(as_text=True)
    assert "<html" in response.get_data(as_text=True)


def test_unknown_trace_for_htmx_is_an_error_fragment_retargeted_at_messages(client, store):
    response = client.get(f"/traces/{'ab' * 16}", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert response.headers["HX-Retarget"] == "#messages"
    assert "<html" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/traces/not-hex",
        f"/traces/{'1' * 33}",
        f"/traces/{'0' * 32}",
        "/traces/zz/otlp.json",
        f"/traces/zz/spans/{sid(1)}",
    ],
)
def test_malformed_trace_id_is_400(client, store, path):
    response = client.get(path)
    assert response.status_code == 400
    assert "trace id" in response.get_data(as_text=True)


def test_unknown_span_is_404_naming_span_and_trace(client, post_trace):
    post_trace("orphan")
    response = client.get(f"/traces/{tid(0x10)}/spans/{sid(77)}")
    assert response.status_code == 404
    assert sid(77) in response.get_data(as_text=True) and tid(0x10) in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "name"), [("?skew=sideways", "skew"), ("/rows?offset=-1", "offset"), ("/rows?offset=x", "offset")]
)
def test_bad_trace_page_parameters_are_400(client, post_trace, path, name):
    post_trace("orphan")
    response = client.get(f"/traces/{tid(0x10)}{path}")
    assert response.status_code == 400
    assert name in response.get_data(as_text=True)


def test_orphan_span_is_shown_and_marked(client, post_trace):
    post_trace("orphan")
    doc = html(client.get(f"/traces/{tid(0x10)}"))
    orphan = doc.select_one(f"#row-{sid(3)}")
    assert "orphan" in orphan["class"]
    assert "never arrived" in orphan.select_one(".orphan-marker")["title"]
    assert doc.select_one(f"#row-{sid(4)}")["data-depth"] == "1"
    assert doc.select_one("dd[data-fact=orphans]").get_text() == "1"


def test_clock_skew_is_adjusted_with_a_marker_and_can_be_switched_off(client, post_trace):
    post_trace("skew")
    doc = html(client.get(f"/traces/{tid(0x20)}"))
    marker = doc.select_one(f"#row-{sid(3)} .skew-marker")
    assert marker is not None and "clocks disagree" in marker["title"]
    assert "show raw times" in doc.select_one("a.skew-toggle").get_text()
    raw = html(client.get(f"/traces/{tid(0x20)}?skew=off", headers={"HX-Request": "true"}))
    assert raw.select(".skew-marker") == []
    assert "skew=on" in raw.select_one("a.skew-toggle")["href"]


def test_span_links_are_shown_both_ways(client, post_trace):
    post_trace("links")
    doc = html(client.get(f"/traces/{tid(0x30)}?span={sid(2)}&span={sid(3)}"))
    producer = doc.select_one(f"#panel-{sid(2)}").get_text(" ", strip=True)
    consumer = doc.select_one(f"#panel-{sid(3)}")
    assert f"linked from span {sid(3)}" in producer
    assert f"span {sid(2)} in this trace" in consumer.get_text(" ", strip=True)
    other = consumer.select_one(f"a[href*='{tid(0x99)}']")
    assert other is not None and "messaging.operation" in consumer.get_text()


def test_span_panel_shows_typed_attributes_events_exception_resource_and_scope(client, post_trace):
    post_trace("exception")
    response = client.get(f"/traces/{tid(0x60)}/spans/{sid(1)}", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "<html" not in response.get_data(as_text=True)
    doc = html(response)
    attrs = {
        tr.th.get_text(): [td.get_text(strip=True) for td in tr.select("td")]
        for tr in doc.select(".span-panel > section:first-of-type table.attrs tr")
    }
    assert attrs["http.response.status_code"] == ["int", "500"]
    assert attrs["retry.ratio"] == ["double", "0.25"]
    assert attrs["cache.hit"] == ["bool", "false"]
    assert attrs["items"] == ["array", '["a", 2]']
    assert attrs["payload"] == ["bytes", "aGVsbG8="]
    assert attrs["user.note"] == ["string", "<script>window.__pwned = true</script>"]
    assert doc.select_one(".exception-head").get_text() == "PaymentDeclined: card <b>declined</b>"
    assert "Traceback" in doc.select_one("pre.stacktrace").get_text()
    text = doc.get_text(" ", strip=True)
    assert "host.name" in text and "payment-host" in text and "fixture 1.0" in text
    assert "error: failed" in text


def test_span_text_is_escaped_everywhere(client, post_trace):
    post_trace("exception")
    body = client.get(f"/traces/{tid(0x60)}?span={sid(1)}").get_data(as_text=True)
    assert "<script>window.__pwned" not in body
    assert "&lt;script&gt;window.__pwned = true&lt;/script&gt;" in body
    assert "<b>declined</b>" not in body


def test_opened_spans_from_the_url_render_their_panels(client, post_trace):
    post_trace("orphan")
    doc = html(client.get(f"/traces/{tid(0x10)}?span={sid(2)}&span={sid(4)}"))
    assert {p["data-span-panel"] for p in doc.select(".span-panel")} == {sid(2), sid(4)}
    assert "open" in doc.select_one(f"#row-{sid(2)}")["class"]


def test_search_within_a_trace_marks_matches(client, post_trace):
    post_trace("orphan")
    doc = html(client.get(f"/traces/{tid(0x10)}?q=late", headers={"HX-Request": "true"}))
    assert {r["data-span-id"] for r in doc.select(".wf-row.is-match")} == {sid(3), sid(4)}
    assert doc.select_one(".match-count").get_text() == "2 matches"


def test_deep_trace_renders_without_recursion_errors(client, post_trace):
    post_trace("deep")
    doc = html(client.get(f"/traces/{tid(0x40)}"))
    assert doc.select_one("dd[data-fact=depth]").get_text() == "1500"
    assert len(doc.select(".wf-row")) == 300
    assert doc.select_one(".wf-more")["hx-trigger"] == "revealed"


def _classed(*names: str) -> SoupStrainer:
    """Parse only elements with one of these classes (and what they hold). A huge
    trace's pages are megabytes of HTML: parsing all of it with Python's parser, and CSS
    selectors over the result, took most of these tests' time; they use lxml's parser."""
    return SoupStrainer(attrs={"class": lambda value: value is not None and bool(set(value.split()) & set(names))})


def test_huge_trace_pages_its_rows(client, post_trace):
    post_trace("huge")
    text = client.get(f"/traces/{tid(0x50)}").get_data(as_text=True)
    facts = BeautifulSoup(text, "lxml", parse_only=SoupStrainer("dd"))
    assert facts.select_one("dd[data-fact=spans]").get_text() == "5000"
    doc = BeautifulSoup(text, "lxml", parse_only=_classed("wf-row", "wf-more"))
    assert len(doc.find_all(class_="wf-row")) == 300
    seen = [r["data-span-id"] for r in doc.find_all(class_="wf-row")]
    url = doc.find(class_="wf-more")["hx-get"]
    while url:
        fragment = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
        page = BeautifulSoup(fragment, "lxml", parse_only=_classed("wf-row", "wf-more"))
        seen += [r["data-span-id"] for r in page.find_all(class_="wf-row")]
        more = page.find(class_="wf-more")
        url = more["hx-get"] if more else None
    assert len(seen) == len(set(seen)) == 5000


def test_span_deep_in_a_huge_trace_opens_from_the_url(client, post_trace):
    post_trace("huge")
    text = client.get(f"/traces/{tid(0x50)}?span={sid(4990)}").get_data(as_text=True)
    doc = BeautifulSoup(text, "lxml", parse_only=SoupStrainer(id=f"panel-{sid(4990)}"))
    assert doc.select_one(f"#panel-{sid(4990)} .span-panel") is not None


def test_statistics_view(client, post_trace):
    post_trace("orphan")
    response = client.get(f"/traces/{tid(0x10)}/stats")
    assert response.status_code == 200
    rows = {tuple(td.get_text() for td in tr.select("td")[:3]) for tr in html(response).select(".trace-stats tbody tr")}
    assert ("gateway", "GET /api/orders", "1") in rows and ("orders", "late child", "1") in rows
    fragment = client.get(f"/traces/{tid(0x10)}/stats", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and "trace-stats" in fragment


def test_download_otlp_json_reads_back_as_the_same_spans(client, post_trace, store):
    post_trace("exception")
    response = client.get(f"/traces/{tid(0x60)}/otlp.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    batch = decode_json(response.get_data())
    assert batch.rejections == []
    assert sorted(batch.spans, key=lambda s: s.span_id) == sorted(store.get_trace(tid(0x60)), key=lambda s: s.span_id)


def test_download_jaeger_json_matches_the_api(client, post_trace, store):
    post_trace("links")
    response = client.get(f"/traces/{tid(0x30)}/jaeger.json")
    assert response.status_code == 200
    assert json.loads(response.get_data())["data"] == [jaeger_trace(store.get_trace(tid(0x30)))]


def test_overview_links_to_the_trace_page(client, store):
    store.write_spans(make_trace(9))
    doc = html(client.get("/"))
    assert doc.select_one("table.traces a")["href"] == f"/traces/{tid(9)}"
    assert doc.select_one("header nav a[href='/traces']") is not None
