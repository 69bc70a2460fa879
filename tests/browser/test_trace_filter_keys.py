"""In a trace, in a real browser: the errors pill leaves only error rows and their greyed
ancestors; the keyboard walks the rows, opens and closes a span and folds its subtree,
without taking keys typed in Find or the filter's fields; the events tab is marked current,
picks a kind and leads from an event to its span."""

from __future__ import annotations

import urllib.request

import pytest

from tests.browser.conftest import OUTPUT

pytestmark = pytest.mark.browser

PATTERNS = f"{0x70:032x}"
ALL_ROWS = list(range(1, 15))
"""The patterns trace's spans 1..14 are its rows in this order; 4 (the saga) has the steps 5..14
below it, and 10 (the first payment call) has 11."""


def sid(n: int) -> str:
    return f"{n:016x}"


@pytest.fixture
def trace_page(page, live_server, load_trace):
    request = urllib.request.Request(
        f"{live_server}/v1/traces", data=load_trace("patterns"), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    page.goto(f"{live_server}/traces/{PATTERNS}")
    return page


def _shown(page) -> dict[int, bool]:
    """Visible rows: {span number: is a match (not greyed context)}."""
    rows = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.wf-row')].filter(r => !r.hidden)
             .map(r => [parseInt(r.dataset.spanId, 16), !r.classList.contains('is-context')]))"""
    )
    return {int(n): matched for n, matched in rows.items()}


def _visible(page) -> list[int]:
    return sorted(_shown(page))


def _focus(page) -> tuple[int, int]:
    """(the row holding keyboard focus, the row marked focused), as span numbers (0: none)."""
    return tuple(
        page.evaluate(
            """() => [(document.activeElement.closest('.wf-row') || {dataset: {spanId: '0'}}).dataset.spanId,
                      (document.querySelector('.wf-row.focused') || {dataset: {spanId: '0'}}).dataset.spanId]
                     .map(id => parseInt(id, 16))"""
        )
    )


def _press(page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def test_the_errors_pill_keeps_error_rows_and_greys_their_ancestors(trace_page):
    page = trace_page
    assert _visible(page) == ALL_ROWS
    page.click(".pill:has(input[name=status])")
    page.locator("[data-filter-count]").wait_for()
    # htmx gives a swapped-in row its old classes until it settles (20 ms later).
    page.wait_for_function("() => !document.querySelector('.htmx-settling')")
    assert page.locator("[data-filter-count]").inner_text() == "6 of 14 spans"
    shown = _shown(page)
    assert {n for n, m in shown.items() if m} == {2, 4, 9, 10, 11, 12}
    assert {n for n, m in shown.items() if not m} == {1, 3}, "ancestors stay, greyed"
    assert page.url.endswith("?status=error"), "the filtered view can be shared, without empty fields"
    assert page.locator(".trace-tabs [data-tab=events]").get_attribute("href").endswith("/events?status=error")
    opacity = "e => getComputedStyle(e).opacity"
    assert float(page.locator(f"#row-{sid(1)} > .wf-line .wf-bar").evaluate(opacity)) < 1
    assert float(page.locator(f"#row-{sid(2)} > .wf-line .wf-bar").evaluate(opacity)) == 1
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "trace-filter-errors.png"), full_page=True)

    page.click(".filter-clear")
    page.locator("[data-filter-count]").wait_for(state="detached")
    assert _visible(page) == ALL_ROWS and "status=error" not in page.url


def test_keys_walk_the_rows_open_and_close_a_span_and_fold_its_subtree(trace_page):
    page = trace_page
    page.locator(".wf-rows").focus()
    assert _focus(page) == (0, 0)
    page.keyboard.press("j")
    assert _focus(page) == (1, 1), "j from the rows' box goes to the first row"
    _press(page, "j", "ArrowDown")
    assert _focus(page) == (3, 3)
    page.keyboard.press("k")
    assert _focus(page) == (2, 2)
    _press(page, "ArrowUp", "k")
    assert _focus(page) == (1, 1), "k on the first row stays there"

    # Left folds the saga's steps away; j then has nowhere to go below it.
    _press(page, "j", "j", "j")
    assert _focus(page) == (4, 4)
    page.keyboard.press("ArrowLeft")
    assert _visible(page) == [1, 2, 3, 4]
    assert page.locator(f"#row-{sid(4)} [data-toggle]").get_attribute("aria-expanded") == "false"
    page.keyboard.press("j")
    assert _focus(page) == (4, 4)
    # Left on a folded span goes to its parent; right there goes to the first child.
    page.keyboard.press("ArrowLeft")
    assert _focus(page) == (3, 3)
    page.keyboard.press("ArrowRight")
    assert _focus(page) == (4, 4) and _visible(page) == [1, 2, 3, 4], "right on an open parent unfolds nothing"
    page.keyboard.press("ArrowRight")
    assert _visible(page) == ALL_ROWS and _focus(page) == (4, 4)
    page.keyboard.press("ArrowRight")
    assert _focus(page) == (5, 5)
    page.keyboard.press("ArrowLeft")
    assert _focus(page) == (4, 4), "left on a leaf goes to its parent"

    # Enter opens the span's details under its row, and the URL names it; Escape closes them.
    _press(page, "j", "j", "j", "j", "j", "j")
    assert _focus(page) == (10, 10)
    page.keyboard.press("Enter")
    panel = page.locator(f"#panel-{sid(10)} .span-panel")
    panel.wait_for()
    assert f"span={sid(10)}" in page.url and _focus(page) == (10, 10)
    assert page.locator(".span-panel").count() == 1
    page.keyboard.press("Escape")
    panel.wait_for(state="detached")
    assert f"span={sid(10)}" not in page.url and _focus(page) == (10, 10)

    # Inside an open panel its own controls keep their keys; Escape there still closes it.
    page.keyboard.press("Enter")
    panel.wait_for()
    page.locator(f"#panel-{sid(10)} [data-close-span]").focus()
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.matches('[data-close-span]')"), "j in the panel moves nothing"
    page.keyboard.press("Escape")
    panel.wait_for(state="detached")
    assert _focus(page) == (10, 10), "focus goes back to the span's row"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "trace-keyboard.png"), full_page=True)


@pytest.mark.parametrize(
    "field", ["input[name=q]", "input[name=tags]", "input[name=min]"], ids=["find", "attributes", "duration"]
)
def test_keys_typed_in_find_and_the_filter_fields_are_not_taken(trace_page, field):
    page = trace_page
    page.locator(".wf-rows").focus()
    _press(page, "j", "j", "j", "j")
    assert _focus(page) == (4, 4)
    box = page.locator(field)
    box.click()
    _press(page, "j", "k", "ArrowDown", "ArrowUp", "ArrowLeft", "ArrowLeft", "x")
    assert box.input_value() == "xjk", "the letters went into the field, the arrows moved its caret"
    page.keyboard.press("ArrowRight")
    assert page.locator(".wf-row.focused").get_attribute("id") == f"row-{sid(4)}", "no row moved"
    assert _visible(page) == ALL_ROWS, "no row folded"
    assert page.locator(".span-panel").count() == 0


def test_the_events_tab_is_marked_current_picks_a_kind_and_leads_to_the_span(trace_page):
    page = trace_page
    current = ".trace-tabs a[aria-current=page]"
    assert page.locator(current).inner_text() == "Waterfall"
    page.click(".trace-tabs [data-tab=events]")
    page.locator(".ev-row").first.wait_for()
    assert page.url.endswith(f"/traces/{PATTERNS}/events")
    assert page.locator(current).inner_text() == "Events and logs"
    assert page.locator(".ev-row td.num").all_inner_texts() == ["+30ms", "+149ms", "+199ms", "+220ms"]
    page.click(".pill[data-kind=breaker]")
    page.wait_for_function("() => document.querySelectorAll('.ev-row').length === 1")
    assert page.url.endswith("/events?kind=breaker")
    assert "closed → open after 5 failures" in page.locator(".ev-row").inner_text()
    assert page.locator(current).inner_text() == "Events and logs"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "trace-events.png"), full_page=True)

    page.click(".trace-tabs [data-tab=stats]")
    page.locator(".trace-stats").wait_for()
    assert page.locator(current).inner_text() == "Statistics"
    page.go_back()
    page.locator(".ev-row").first.wait_for()
    page.click(".ev-row a.ev-span")
    page.locator(f"#panel-{sid(10)} .span-panel").wait_for()
    assert page.url.endswith(f"?span={sid(10)}#row-{sid(10)}")
    assert page.locator(f"#row-{sid(10)}").is_visible()
    assert page.locator(current).inner_text() == "Waterfall"
