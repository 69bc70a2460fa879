"""The compare page over HTTP: a merged tree of two traces with their known changes, the
biggest changes first, traces picked by id, ticked in the search results, or the previous
trace of the same operation."""

from __future__ import annotations

import time

import pytest

from collectors.model import STATUS_ERROR, Span
from app.compare import FIRST_ROWS
from tests.app.test_traces import html, make_trace, res, tid

MS = 1_000_000


def spans(n: int, start: int, parts: list[tuple[int, int | None, str, str, float, float]], **kw) -> list[Span]:
    """A trace from (span number, parent number, service, name, start ms, end ms) rows."""
    return [
        Span(
            tid(n),
            f"{sid:016x}",
            f"{parent:016x}" if parent else "",
            name,
            2 if parent is None else 1,
            start + int(lo * MS),
            start + int(hi * MS),
            res(service),
            status_code=STATUS_ERROR if kw.get("error") == sid else 0,
        )
        for sid, parent, service, name, lo, hi in parts
    ]


@pytest.fixture
def checkout_pair(store):
    """A (earlier) and B (later) of one operation: payment 40 ms slower (+200 %), the
    cache lookup missing from B, a fraud check added in B, the stock call unchanged."""
    now = time.time_ns()
    a = spans(
        0xA,
        now - 60_000 * MS,
        [
            (1, None, "gateway", "POST /checkout", 0, 100),
            (2, 1, "orders", "cache get <cart>", 1, 6),
            (3, 1, "payment", "charge", 10, 30),
            (4, 1, "stock", "reserve", 40, 60),
        ],
    )
    b = spans(
        0xB,
        now - 30_000 * MS,
        [
            (1, None, "gateway", "POST /checkout", 0, 150),
            (3, 1, "payment", "charge", 10, 70),
            (4, 1, "stock", "reserve", 80, 100),
            (5, 1, "fraud", "<script>window.__pwned=1</script>", 100, 108),
        ],
        error=3,
    )
    store.write_spans(a)
    store.write_spans(b)
    return tid(0xA), tid(0xB)


def rows_of(page) -> list[tuple[str, str, str, str]]:
    return [
        (
            tr["data-where"],
            tr.select_one("td.name a").get_text(" ", strip=True),
            tr.select_one("td.delta").get_text(" ", strip=True),
            tr.select_one("td.pct").get_text(strip=True),
        )
        for tr in page.select("tr[data-where]")
    ]


def test_merged_tree_shows_each_spans_change_in_ms_and_percent(client, checkout_pair):
    a, b = checkout_pair
    response = client.get(f"/traces/compare?a={a}&b={b}")
    assert response.status_code == 200
    page = html(response)
    assert rows_of(page) == [
        ("both", "gateway POST /checkout", "▲ +50.0 ms", "+50 %"),
        ("only-a", "orders cache get <cart>", "▼ −5.00 ms", ""),
        ("both", "payment charge", "▲ +40.0 ms", "+200 %"),
        ("both", "stock reserve", "±0 ms", "±0 %"),
        ("only-b", "fraud <script>window.__pwned=1</script>", "▲ +8.00 ms", ""),
    ]
    trs = page.select("tr[data-where]")
    levels = {tr.select_one("td.name a").get_text(" ", strip=True): tr["data-level"] for tr in trs}
    assert levels["payment charge"] == "3" and levels["gateway POST /checkout"] == "2"
    assert levels["stock reserve"] == "0"
    marks = [(tr["data-where"], tr.select_one(".mark").get_text()) for tr in trs if tr.select_one(".mark")]
    assert marks == [("only-a", "missing"), ("only-b", "added")]
    payment = page.select("tr[data-where]")[2]
    assert "bad" in payment.select("td.num")[1]["class"], "B's failed span is marked"
    assert payment.select_one("td.name a")["href"] == f"/traces/{b}?span={3:016x}"
    assert page.select("tr[data-where]")[1].select_one("td.name a")["href"] == f"/traces/{a}?span={2:016x}"
    assert page.select_one(".diff-total .total").get_text() == "+50.0 ms (+50 %)"
    assert page.select_one(".diff-summary").get_text(" ", strip=True) == "3 in both · 1 added in B · 1 missing in B"
    opens = (page.select_one("a.open-a")["href"], page.select_one("a.open-b")["href"])
    assert opens == (f"/traces/{a}", f"/traces/{b}")
    swapped = html(client.get(page.select_one("a.swap")["href"]))
    assert swapped.select_one(".diff-total .total").get_text() == "−50.0 ms (−33 %)"


def test_biggest_changes_come_first_and_link_to_their_row(client, checkout_pair):
    a, b = checkout_pair
    page = html(client.get(f"/traces/compare?a={a}&b={b}"))
    items = page.select(".biggest li")
    assert [li.select_one("a").get_text(" ", strip=True) for li in items] == [
        "gateway POST /checkout",
        "payment charge",
        "fraud <script>window.__pwned=1</script>",
        "orders cache get <cart>",
    ]
    words = [li.select_one(".words").get_text() for li in items]
    assert words == ["slower", "much slower", "added in B", "missing in B"]
    for li in items:
        target = page.select_one(li.select_one("a")["href"])
        assert target is not None and target.name == "tr"
        assert target.select_one("td.name a").get_text(" ", strip=True) == li.select_one("a").get_text(" ", strip=True)


def test_span_text_is_escaped_in_the_diff(client, checkout_pair):
    a, b = checkout_pair
    text = client.get(f"/traces/compare?a={a}&b={b}").get_data(as_text=True)
    assert "<script>window.__pwned" not in text and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "cache get &lt;cart&gt;" in text


def test_previous_trace_of_the_operation_redirects_to_the_comparison(client, checkout_pair):
    a, b = checkout_pair
    trace_page = html(client.get(f"/traces/{b}"))
    link = trace_page.select_one(".trace-actions a.compare-previous")
    assert link["href"] == f"/traces/compare?previous={b}"
    response = client.get(link["href"])
    assert response.status_code == 302 and response.headers["Location"] == f"/traces/compare?a={a}&b={b}"
    first = client.get(f"/traces/compare?previous={a}")
    assert first.status_code == 404
    assert "No earlier trace" in html(first).select_one("[role=alert]").get_text()
    assert client.get(f"/traces/compare?previous={tid(99)}").status_code == 404
    assert client.get("/traces/compare?previous=zz").status_code == 400


def test_compare_errors(client, store):
    store.write_spans(make_trace(7))
    empty = client.get("/traces/compare")
    assert empty.status_code == 200 and "Tick two rows" in html(empty).select_one(".empty").get_text()
    assert client.get(f"/traces/compare?a={tid(7)}&b=nothex").status_code == 400
    missing = client.get(f"/traces/compare?a={tid(7)}&b={tid(99)}")
    assert missing.status_code == 404 and tid(99) in missing.get_data(as_text=True)


def test_compare_takes_the_two_traces_ticked_in_search_results_earlier_as_a(client, store):
    store.write_spans(make_trace(7, children=2, age_min=2))
    store.write_spans(make_trace(8, children=3, age_min=1))
    results = html(client.get("/traces"))
    assert results.select_one("form.compare-pick")["action"] == "/traces/compare"
    assert {box["value"] for box in results.select("form.compare-pick input[name=trace]")} == {tid(7), tid(8)}
    response = client.get(f"/traces/compare?trace={tid(8)}&trace={tid(7)}")
    assert response.status_code == 200
    page = html(response)
    assert (page.select_one("input[name=a]")["value"], page.select_one("input[name=b]")["value"]) == (tid(7), tid(8))
    assert [tr["data-where"] for tr in page.select("tr[data-where]")].count("only-b") == 1
    one = client.get(f"/traces/compare?trace={tid(7)}")
    assert one.status_code == 400
    assert "Tick two traces" in html(one).select_one("[role=alert]").get_text()


def test_a_large_diff_shows_its_first_rows_and_links_the_rest(client, store):
    now = time.time_ns()
    parts = [(1, None, "gateway", "GET /report", 0, 2000)] + [
        (n, 1, "worker", "step", n, n + 1) for n in range(2, FIRST_ROWS + 202)
    ]
    slower = [p if p[0] != FIRST_ROWS + 150 else (*p[:5], p[4] + 500) for p in parts]
    store.write_spans(spans(0xC, now - 60_000 * MS, parts))
    store.write_spans(spans(0xD, now - 30_000 * MS, slower))
    a, b = tid(0xC), tid(0xD)
    page = html(client.get(f"/traces/compare?a={a}&b={b}"))
    assert len(page.select("tr[data-where]")) == FIRST_ROWS
    more = page.select_one(".diff-more a")
    assert more["href"] == f"/traces/compare?a={a}&b={b}&rows=all"
    late = FIRST_ROWS + 149  # the slower step's row: the root, then steps 2.. in start order
    assert page.select(".biggest li a")[0]["href"] == f"/traces/compare?a={a}&b={b}&rows=all#d-{late}"
    whole = html(client.get(more["href"]))
    assert len(whole.select("tr[data-where]")) == FIRST_ROWS + 201 and whole.select_one(".diff-more") is None
    row = whole.select_one(f"#d-{late}")
    assert row.select_one("td.delta").get_text(" ", strip=True) == "▲ +499 ms"
    assert client.get(f"/traces/compare?a={a}&b={b}&rows=some").status_code == 400
