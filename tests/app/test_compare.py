"""The compare page over HTTP: traces picked by id or ticked in the search results."""

from __future__ import annotations

from tests.app.test_traces import html, make_trace, tid


def test_compare_shows_only_in_a_only_in_b_and_both(client, store):
    store.write_spans(make_trace(7, children=2, duration_ms=100))
    store.write_spans(make_trace(8, children=3, duration_ms=150))
    response = client.get(f"/traces/compare?a={tid(7)}&b={tid(8)}")
    assert response.status_code == 200
    rows = [
        (tr["data-where"], tr.select("td")[0].get_text(" ", strip=True)) for tr in html(response).select("tr.diff-row")
    ]
    assert rows == [
        ("both", "gateway : GET /"),
        ("both", "orders : child 0"),
        ("both", "orders : child 1"),
        ("only-b", "orders : child 2"),
    ]
    assert "+50ms (+50%)" in html(response).select_one("tr.diff-row td.delta").get_text()
    page = html(response)
    assert (page.select_one("a.open-a")["href"], page.select_one("a.open-b")["href"]) == (
        f"/traces/{tid(7)}",
        f"/traces/{tid(8)}",
    )


def test_compare_errors(client, store):
    store.write_spans(make_trace(7))
    assert client.get("/traces/compare").status_code == 200
    assert client.get(f"/traces/compare?a={tid(7)}&b=nothex").status_code == 400
    missing = client.get(f"/traces/compare?a={tid(7)}&b={tid(99)}")
    assert missing.status_code == 404 and tid(99) in missing.get_data(as_text=True)


def test_compare_takes_the_two_traces_ticked_in_search_results(client, store):
    store.write_spans(make_trace(7, children=2))
    store.write_spans(make_trace(8, children=3))
    results = html(client.get("/traces"))
    assert results.select_one("form.compare-pick")["action"] == "/traces/compare"
    assert {box["value"] for box in results.select("form.compare-pick input[name=trace]")} == {tid(7), tid(8)}
    response = client.get(f"/traces/compare?trace={tid(7)}&trace={tid(8)}")
    assert response.status_code == 200
    assert [tr["data-where"] for tr in html(response).select("tr.diff-row")].count("only-b") == 1
    one = client.get(f"/traces/compare?trace={tid(7)}")
    assert one.status_code == 400
    assert "Tick two traces" in html(one).select_one("[role=alert]").get_text()
