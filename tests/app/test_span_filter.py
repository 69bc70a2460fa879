"""The waterfall's span filter (server HTML): each criterion and pill keeps its matches and
their ancestors (greyed as context), says "N of M spans", travels in every link of the
filtered view, pages lazily through the rows it keeps, and refuses bad input with a 400."""

from __future__ import annotations

import json

import pytest
from bs4 import BeautifulSoup

PATTERNS = f"{0x70:032x}"
HUGE = f"{0x50:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


@pytest.fixture
def shown(client, post_trace):
    """The rows of the patterns trace filtered by a query: {span number: is a match}."""
    post_trace("patterns")

    def get(query: str) -> tuple[dict[int, bool], BeautifulSoup]:
        response = client.get(f"/traces/{PATTERNS}?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        doc = BeautifulSoup(response.get_data(as_text=True), "html.parser")
        rows = {int(r["data-span-id"], 16): "is-context" not in r["class"] for r in doc.select(".wf-row")}
        return rows, doc

    return get


def matches(rows: dict[int, bool]) -> set[int]:
    return {n for n, matched in rows.items() if matched}


def context(rows: dict[int, bool]) -> set[int]:
    return {n for n, matched in rows.items() if not matched}


def test_without_a_filter_every_span_is_shown_and_none_is_greyed(shown):
    rows, doc = shown("")
    assert len(rows) == 14 and not context(rows)
    assert doc.select_one("[data-filter-count]") is None and doc.select_one(".filter-clear") is None


def test_the_errors_pill_keeps_error_spans_and_greys_their_ancestors(shown):
    rows, doc = shown("status=error")
    assert matches(rows) == {2, 4, 9, 10, 11, 12}
    assert context(rows) == {1, 3}, "the root and the orders server span keep the tree readable"
    assert doc.select_one("[data-filter-count]").get_text() == "6 of 14 spans"
    assert doc.select_one(".pill input[name=status]").has_attr("checked")
    assert doc.select_one(".filter-clear")["href"] == f"/traces/{PATTERNS}"


def test_the_slow_pill_keeps_the_spans_with_the_most_self_time_and_says_its_threshold(shown):
    rows, doc = shown("slow=on")
    assert matches(rows) == {11}, "payment's 82 ms charge is the slowest 5 % by self time"
    assert context(rows) == {1, 2, 3, 4, 9, 10}
    assert "Slowest 5% (self ≥ 82ms)" in doc.select_one(".pill input[name=slow]").parent.get_text()


def parallel_trace() -> bytes:
    """A root (0-100 ms) whose child A (0-90 ms) runs beside child B (10-40 ms, with a child
    C): only the root and A are on the critical path."""
    base = 1_700_000_000_000_000_000

    def span(n: int, parent: int, start_ms: int, end_ms: int) -> dict:
        return {
            "traceId": f"{0x77:032x}",
            "spanId": sid(n),
            "parentSpanId": sid(parent) if parent else "",
            "name": f"step {n}",
            "kind": 1,
            "startTimeUnixNano": str(base + start_ms * 1_000_000),
            "endTimeUnixNano": str(base + end_ms * 1_000_000),
        }

    spans = [span(1, 0, 0, 100), span(2, 1, 0, 90), span(3, 1, 10, 40), span(4, 3, 12, 30)]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "worker"}}]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}).encode()


def test_the_critical_path_pill_keeps_the_critical_spans(client):
    assert client.post("/v1/traces", data=parallel_trace(), content_type="application/json").status_code == 200
    doc = BeautifulSoup(client.get(f"/traces/{0x77:032x}?critical=on").get_data(as_text=True), "html.parser")
    assert [int(r["data-span-id"], 16) for r in doc.select(".wf-row")] == [1, 2]
    assert doc.select_one("[data-filter-count]").get_text() == "2 of 4 spans"


def test_service_attribute_and_duration_criteria_combine(shown):
    rows, _ = shown("service=inventory")
    assert matches(rows) == {8} and context(rows) == {1, 2, 3, 4, 6, 7}
    rows, _ = shown("tags=circuit_breaker.rejected%3Dtrue")
    assert matches(rows) == {12}
    rows, _ = shown("tags=saga.step%3Dreserve_inventory+saga.name%3Dorder")
    assert matches(rows) == {6, 13}
    rows, _ = shown("tags=host.name%3Dpayment-host")
    assert matches(rows) == {11}, "a resource attribute matches too"
    rows, _ = shown("min=50ms&max=100ms")
    assert matches(rows) == {10, 11, 13}
    rows, doc = shown("service=orders&min=100ms&status=error")
    assert matches(rows) == {4, 9}
    assert doc.select_one("[data-filter-count]").get_text() == "2 of 14 spans"


def test_a_filter_with_no_match_shows_no_row_and_says_so(shown):
    rows, doc = shown("service=nowhere")
    assert rows == {}
    assert doc.select_one("[data-filter-count]").get_text() == "0 of 14 spans"


def test_the_filter_stays_in_the_links_of_the_filtered_view(shown):
    _, doc = shown("status=error&q=payment")
    name = doc.select_one(f"#row-{sid(10)} .wf-name")
    assert "status=error" in name["href"] and "status=error" in name["hx-get"]
    assert "status=error" in doc.select_one(".skew-toggle")["href"]
    assert doc.select_one(".wf-find input[type=hidden][name=status]")["value"] == "error"
    assert doc.select_one(".wf-filter input[type=hidden][name=q]")["value"] == "payment"
    assert doc.select_one(".filter-clear")["href"] == f"/traces/{PATTERNS}?q=payment"


def test_next_error_order_counts_places_among_the_kept_rows(shown):
    _, doc = shown("status=error")
    order = json.loads(doc.select_one("[data-waterfall]")["data-error-order"])
    assert order[0] == [sid(11), 6], "payment's charge is the 7th kept row"


@pytest.mark.parametrize(
    "query",
    ["min=fast", "max=-3ms", "min=2s&max=1s", "status=ok", "slow=yes", "critical=1", "tags=novalue", 'tags=a%3D"b',
     "service=a%00b"],
)
def test_bad_filter_input_is_a_400_naming_the_field(client, post_trace, query):
    post_trace("patterns")
    response = client.get(f"/traces/{PATTERNS}?{query}")
    assert response.status_code == 400
    field = query.split("=")[0]
    assert field in response.get_data(as_text=True)
    assert client.get(f"/traces/{PATTERNS}/rows?{query}").status_code == 400


def test_a_filtered_huge_trace_pages_through_the_rows_it_keeps(client, post_trace):
    post_trace("huge")
    first = BeautifulSoup(client.get(f"/traces/{HUGE}?min=0ns").get_data(as_text=True), "lxml")
    assert len(first.select(".wf-row")) == 300
    more = first.select_one(".wf-more")["hx-get"]
    assert "min=0ns" in more and "offset=300" in more
    page = BeautifulSoup(client.get(more, headers={"HX-Request": "true"}).get_data(as_text=True), "lxml")
    assert len(page.select(".wf-row")) == 1000 and not page.select(".wf-row.is-context")
