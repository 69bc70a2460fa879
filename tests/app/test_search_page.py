"""The search page's scatter over HTTP: its axis fits the results, each dot is a link
with a name, and a dragged range comes back as a custom-range search."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.app.test_traces import found, html, make_trace, tid

S = 1_000_000_000


@pytest.fixture
def now() -> int:
    return time.time_ns()


def test_scatter_fits_the_results_and_each_dot_is_a_named_link(client, store, now):
    # Three traces over four minutes, searched over the last hour.
    for n, age in ((1, 2), (2, 4), (3, 6)):
        store.write_spans(make_trace(n, age_min=age, duration_ms=20 * n, children=n, errors=n == 3, now=now))
    page = html(client.get("/traces?range=1h"))
    figure = page.select_one("figure.scatter")
    start_ms, end_ms = int(figure["data-start-ms"]), int(figure["data-end-ms"])
    assert (end_ms - start_ms) / 1000 < 5 * 60, "the axis spans the results' four minutes, not the hour"
    dots = figure.select(".scatter-plot a.dot")
    assert [d["data-trace-id"] for d in dots] == [tid(1), tid(2), tid(3)]
    assert [d["href"] for d in dots] == [f"/traces/{tid(n)}" for n in (1, 2, 3)]
    lefts = [float(d["style"].split("left:")[1].split("%")[0]) for d in dots]
    assert lefts[0] > 90 and lefts[2] < 10 and 40 < lefts[1] < 60
    assert dots[2]["aria-label"].startswith("gateway GET /, 60ms, 4 spans, 1 error, started ")
    assert "error" in dots[2]["class"] and "error" not in dots[0]["class"]
    labels = [s.get_text() for s in figure.select(".scatter-x span")]
    assert 3 <= len(labels) <= 7 and all(len(label) == 5 and label[2] == ":" for label in labels), labels


def test_scatter_text_is_escaped(client, store, now):
    store.write_spans(make_trace(9, service="<b>svc</b>", name='GET "/<i>"', now=now))
    text = client.get("/traces").get_data(as_text=True)
    assert "<b>svc</b>" not in text and 'aria-label="&lt;b&gt;svc&lt;/b&gt; GET &#34;/&lt;i&gt;&#34;' in text


def test_a_dragged_range_is_a_custom_range_to_the_second(client, store, now):
    for n, age in ((1, 1), (2, 3), (3, 5)):
        store.write_spans(make_trace(n, age_min=age, now=now))

    def utc(ns: int) -> str:
        return datetime.fromtimestamp(ns // S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")

    start, end = utc(now - 4 * 60 * S), utc(now - 2 * 60 * S)
    assert found(client, f"range=custom&start={start}&end={end}") == [2]
    page = html(client.get(f"/traces?range=custom&start={start}&end={end}"))
    assert page.select_one("input[name=start]")["value"] == start
    assert page.select_one("input[name=start]")["step"] == "1"


def test_empty_results_say_what_to_do_next(client, store, now):
    empty = html(client.get("/traces")).select_one("#results .empty").get_text(" ", strip=True)
    assert "No service has sent a span yet" in empty and "http://localhost/v1/traces" in empty
    store.write_spans(make_trace(1, age_min=90, now=now))
    narrowed = html(client.get("/traces?range=1h")).select_one("#results .empty").get_text(" ", strip=True)
    assert narrowed == "No traces match these filters in this time range: widen the time range or clear a filter."
