"""Search's scatter and the compare page in a real browser: dragging across the scatter
searches that range, a dot opens its trace (by mouse and by keyboard), two ticked rows
open their comparison; both pages fit phone, tablet and wide widths (screenshots under
test-output/)."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlparse

import pytest

from tests.app.test_compare import spans
from tests.app.test_traces import make_trace, tid
from tests.browser.conftest import OUTPUT

pytestmark = pytest.mark.browser

WIDTHS = (390, 768, 1440)
MS = 1_000_000


@pytest.fixture
def spread(store):
    """Traces 1, 2 and 3 started 1, 3 and 5 minutes ago (one minute of them apart is
    hundreds of pixels on the fitted axis)."""
    now = time.time_ns()
    for n, age in ((1, 1), (2, 3), (3, 5)):
        store.write_spans(make_trace(n, age_min=age, duration_ms=40 * n, children=n, now=now))
    return store


@pytest.fixture
def changed_pair(store):
    """Two traces of POST /checkout: B's payment 40 ms slower, a span missing, one added."""
    now = time.time_ns()
    store.write_spans(
        spans(
            0xA,
            now - 120_000 * MS,
            [
                (1, None, "gateway", "POST /checkout", 0, 100),
                (2, 1, "orders", "cache get <cart>", 1, 6),
                (3, 1, "payment", "charge", 10, 30),
                (4, 1, "stock", "reserve", 40, 60),
            ],
        )
    )
    store.write_spans(
        spans(
            0xB,
            now - 60_000 * MS,
            [
                (1, None, "gateway", "POST /checkout", 0, 150),
                (3, 1, "payment", "charge", 10, 70),
                (4, 1, "stock", "reserve", 80, 100),
                (5, 1, "fraud", "<script>window.__pwned=1</script>", 100, 108),
            ],
        )
    )
    return tid(0xA), tid(0xB)


def dot_centre(page, n: int) -> tuple[float, float]:
    box = page.locator(f".scatter a.dot[data-trace-id='{tid(n)}']").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_dragging_across_the_scatter_searches_that_time_range(page, live_server, spread):
    page.goto(live_server + "/traces?range=1h")
    page.evaluate("window.__samePage = true")
    assert page.locator("#results tr.trace-row").count() == 3
    x3, _ = dot_centre(page, 3)
    x2, _ = dot_centre(page, 2)
    x1, _ = dot_centre(page, 1)
    assert x3 < x2 < x1 and x1 - x3 > 300, "the axis fits the four minutes of results"
    plot = page.locator(".scatter-plot").bounding_box()
    y = plot["y"] + plot["height"] * 0.1
    page.mouse.move((x3 + x2) / 2, y)
    page.mouse.down()
    page.mouse.move(x2, y, steps=5)
    assert page.locator(".scatter .brush").count() == 1, "the dragged range is drawn while dragging"
    page.mouse.move((x2 + x1) / 2, y, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r"range=custom"))
    page.wait_for_function("() => document.querySelectorAll('#results tr.trace-row').length === 1")
    assert page.locator("#results tr.trace-row").first.get_attribute("data-trace-id") == tid(2)
    query = parse_qs(urlparse(page.url).query)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", query["start"][0]) and query["end"][0] > query["start"][0]
    assert page.input_value("select[name=range]") == "custom"
    assert page.evaluate("window.__samePage") is True, "htmx ran the search without reloading the page"
    page.reload()
    assert page.locator("#results tr.trace-row").count() == 1, "the narrowed search is in the URL"


def test_a_dot_opens_its_trace_by_mouse_and_by_keyboard(page, live_server, spread):
    page.goto(live_server + "/traces?range=1h")
    dot = page.locator(f".scatter a.dot[data-trace-id='{tid(2)}']")
    assert dot.get_attribute("aria-label").startswith("gateway GET /, 80ms, 3 spans")
    dot.click()
    page.wait_for_url(re.compile(f"/traces/{tid(2)}$"))
    page.go_back()
    page.wait_for_url(re.compile(r"/traces\?"))
    dot = page.locator(f".scatter a.dot[data-trace-id='{tid(3)}']")
    dot.focus()
    assert page.evaluate("document.activeElement.dataset.traceId") == tid(3)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(f"/traces/{tid(3)}$"))


def test_two_ticked_rows_open_the_diff_with_its_biggest_changes(page, live_server, changed_pair):
    a, b = changed_pair
    page.goto(live_server + "/traces?service=gateway")
    for trace_id in (b, a):
        page.locator(f"#results tr[data-trace-id='{trace_id}'] input[name=trace]").check()
    page.click("#results .compare-pick button[type=submit]")
    page.wait_for_url(re.compile(r"/traces/compare\?"))
    assert (page.input_value("input[name=a]"), page.input_value("input[name=b]")) == (a, b)
    first = page.locator(".biggest li").first
    assert "gateway POST /checkout" in first.inner_text() and "+50.0 ms" in first.inner_text()
    page.locator(".biggest li", has_text="payment charge").locator("a").click()
    target = page.locator("tr:target")
    assert "payment charge" in target.inner_text() and "+200 %" in target.inner_text()
    added = " ".join(page.locator("tr[data-where='only-b'] td.name").text_content().split())
    assert added == "added fraud <script>window.__pwned=1</script>"
    assert page.evaluate("window.__pwned") is None
    page.goto(f"{live_server}/traces/{b}")
    page.click("a.compare-previous")
    page.wait_for_url(re.compile(rf"/traces/compare\?a={a}&b={b}$"))
    assert page.locator("tr[data-where]").count() == 5


def _overflowing(page, selectors: list[str]) -> list[str]:
    """Selectors whose box reaches past the viewport's right edge."""
    return page.evaluate(
        """(selectors) => selectors.filter((s) => {
             const el = document.querySelector(s);
             return el && el.getBoundingClientRect().right > window.innerWidth + 0.5;
           })""",
        selectors,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_search_and_compare_fit_each_width(browser, live_server, spread, changed_pair, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(live_server + "/traces?range=1h")
        form = page.locator("form.search-form")
        assert form.evaluate("f => f.scrollWidth <= f.clientWidth"), "a control sticks out of the search form"
        assert _overflowing(page, ["form.search-form", "figure.scatter", ".results-scroll", ".compare-bar"]) == []
        labels = page.locator(".scatter-x span:visible")
        boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
        assert len(boxes) >= 2 and all(b["x"] + b["width"] <= c["x"] for b, c in zip(boxes, boxes[1:], strict=False)), (
            "time labels overlap"
        )
        assert all(page.locator(".scatter-x span:visible").nth(i).evaluate(
            "e => parseFloat(getComputedStyle(e).fontSize) >= 11") for i in range(labels.count()))
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"search-{width}.png"), full_page=True)
        a, b = changed_pair
        page.goto(f"{live_server}/traces/compare?a={a}&b={b}")
        assert _overflowing(page, [".compare-form", ".diff-heads", ".diff-legend", ".biggest", ".diff-scroll"]) == []
        page.screenshot(path=str(OUTPUT / f"compare-{width}.png"), full_page=True)
    finally:
        context.close()


def test_without_javascript_the_form_dots_and_compare_still_work(browser, live_server, spread):
    context = browser.new_context(viewport={"width": 1000, "height": 900}, java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(live_server + "/traces")
        page.select_option("select[name=range]", "custom")
        start = page.locator(f"#results tr[data-trace-id='{tid(2)}'] td.start").inner_text()[:19].replace(" ", "T")
        page.fill("input[name=start]", start)
        page.click("button.find")
        page.wait_for_url(re.compile(r"range=custom"))
        assert {page.locator("tr.trace-row").nth(i).get_attribute("data-trace-id") for i in range(2)} == {tid(1), tid(2)}
        assert page.locator("tr.trace-row").count() == 2
        for n in (1, 2):
            page.locator(f"tr[data-trace-id='{tid(n)}'] input[name=trace]").check()
        page.click(".compare-pick button[type=submit]")
        page.wait_for_url(re.compile(r"/traces/compare\?"))
        assert page.locator("tr[data-where]").count() == 3
        page.go_back()
        page.locator(f".scatter a.dot[data-trace-id='{tid(1)}']").click()
        page.wait_for_url(re.compile(f"/traces/{tid(1)}$"))
    finally:
        context.close()
