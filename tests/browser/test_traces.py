"""The trace explorer in a real browser: htmx swaps, span panels, history, escaping."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

pytestmark = pytest.mark.browser

SCRIPT_TRACE = f"{0x60:032x}"
ORPHAN_TRACE = f"{0x10:032x}"


def _post_fixture(live_server: str, load_trace, name: str) -> None:
    request = urllib.request.Request(
        f"{live_server}/v1/traces", data=load_trace(name), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _send_checkout_trace(tracer_provider_factory) -> str:
    provider = tracer_provider_factory("checkout-svc")
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("POST /checkout") as root, tracer.start_as_current_span("reserve stock") as child:
        child.set_attribute("stock.sku", "sku-<42>")
    provider.force_flush()
    return format(root.get_span_context().trace_id, "032x")


def test_search_swaps_results_in_and_pushes_the_filters_into_the_url(page, live_server, tracer_provider_factory):
    trace_id = _send_checkout_trace(tracer_provider_factory)
    other = tracer_provider_factory("other-svc")
    with other.get_tracer("t").start_as_current_span("unrelated"):
        pass
    other.force_flush()
    page.goto(live_server + "/traces")
    page.evaluate("window.__samePage = true")
    page.select_option("#service", "checkout-svc")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"service=checkout-svc"))
    rows = page.locator("#results tr.trace-row")
    rows.first.wait_for()
    assert rows.count() == 1
    assert rows.first.get_attribute("data-trace-id") == trace_id
    assert page.evaluate("window.__samePage") is True, "the search reloaded the page instead of swapping results"
    assert page.locator(f".scatter a.dot[data-trace-id='{trace_id}']").count() == 1


def test_two_ticked_search_results_open_their_comparison(page, live_server, tracer_provider_factory):
    first, second = _send_checkout_trace(tracer_provider_factory), _send_checkout_trace(tracer_provider_factory)
    page.goto(live_server + "/traces?service=checkout-svc")
    for trace_id in (first, second):
        page.locator(f"#results tr[data-trace-id='{trace_id}'] input[name=trace]").check()
    page.click("#results .compare-pick button[type=submit]")
    page.wait_for_url(re.compile(r"/traces/compare\?"))
    assert {page.input_value("input[name=a]"), page.input_value("input[name=b]")} == {first, second}
    rows = page.locator("tr[data-where]")
    assert rows.count() == 2
    assert {rows.nth(i).get_attribute("data-where") for i in range(2)} == {"both"}


def test_bad_filter_shows_an_inline_message_naming_the_field(page, live_server):
    page.goto(live_server + "/traces")
    page.fill("input[name=min_duration]", "fast")
    page.click("button[type=submit]")
    message = page.locator("#results .search-errors li[data-field=min_duration]")
    message.wait_for()
    assert "min duration" in message.inner_text()
    assert "'fast'" in message.inner_text()


def test_open_trace_then_span_shows_attributes_and_puts_span_in_url(page, live_server, tracer_provider_factory):
    trace_id = _send_checkout_trace(tracer_provider_factory)
    page.goto(live_server + "/traces?service=checkout-svc")
    page.click(f"tr.trace-row[data-trace-id='{trace_id}'] a.trace-link")
    page.wait_for_url(re.compile(trace_id))
    assert "POST /checkout" in page.locator(".trace-header h1").inner_text()
    page.locator(".wf-name", has_text="reserve stock").click()
    panel = page.locator(".span-panel")
    panel.wait_for()
    assert "stock.sku" in panel.inner_text() and "sku-<42>" in panel.inner_text()
    page.wait_for_url(re.compile(r"[?&]span=[0-9a-f]{16}"))
    page.locator(".wf-name", has_text="POST /checkout").click()
    page.wait_for_function("() => document.querySelectorAll('.span-panel').length === 2")
    page.wait_for_function("() => new URL(location.href).searchParams.getAll('span').length === 2")
    page.reload()
    assert page.locator(".span-panel").count() == 2, "reloading the URL did not reopen both panels"


def test_back_button_restores_the_search(page, live_server, tracer_provider_factory):
    trace_id = _send_checkout_trace(tracer_provider_factory)
    page.goto(live_server + "/traces")
    page.select_option("#service", "checkout-svc")
    page.fill("input[name=tags]", "stock.sku=sku-<42>")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"tags="))
    page.locator(f"tr.trace-row[data-trace-id='{trace_id}'] a.trace-link").click()
    page.wait_for_url(re.compile(f"/traces/{trace_id}"))
    page.go_back()
    page.wait_for_url(re.compile(r"service=checkout-svc"))
    page.locator(f"tr.trace-row[data-trace-id='{trace_id}']").wait_for()
    assert page.input_value("#service") == "checkout-svc"
    assert page.input_value("input[name=tags]") == "stock.sku=sku-<42>"


def test_span_text_with_script_tags_shows_as_text(page, live_server, load_trace):
    _post_fixture(live_server, load_trace, "exception")
    page.goto(f"{live_server}/traces/{SCRIPT_TRACE}")
    assert "<script>window.__pwned = true</script>" in page.locator(".trace-header h1").inner_text()
    page.locator(".wf-name").first.click()
    panel = page.locator(".span-panel")
    panel.wait_for()
    assert "<script>window.__pwned = true</script>" in panel.inner_text()
    assert "card <b>declined</b>" in panel.locator(".exception-head").inner_text()
    assert "PaymentDeclined" in panel.locator("pre.stacktrace").inner_text()
    assert page.evaluate("window.__pwned") is None


def test_collapse_hides_children_and_error_navigation_focuses_error_spans(page, live_server, load_trace):
    _post_fixture(live_server, load_trace, "orphan")
    page.goto(f"{live_server}/traces/{ORPHAN_TRACE}")
    late_child = page.locator(f"#row-{4:016x}")
    assert late_child.is_visible()
    assert "orphan" in page.locator(f"#row-{3:016x} .orphan-marker").inner_text()
    page.locator(f"#row-{3:016x} [data-toggle]").click()
    late_child.wait_for(state="hidden")
    page.click("[data-expand-all]")
    late_child.wait_for(state="visible")
    page.click("[data-collapse-all]")
    page.locator(f"#row-{2:016x}").wait_for(state="hidden")
    assert page.locator(f"#row-{1:016x}").is_visible()


def test_huge_trace_loads_more_rows_when_scrolled(page, live_server, load_trace):
    _post_fixture(live_server, load_trace, "huge")
    page.goto(f"{live_server}/traces/{0x50:032x}")
    first = page.locator(".wf-row").count()
    assert 0 < first < 5000
    page.locator(".wf-more").scroll_into_view_if_needed()
    page.wait_for_function(f"() => document.querySelectorAll('.wf-row').length > {first}")


def test_live_mode_shows_new_traces_without_a_reload(page, live_server, tracer_provider_factory):
    page.clock.install()  # Playwright's clock: the 5 s refresh timer is run, not waited for
    page.goto(live_server + "/traces?live=1")
    page.locator("[data-live]").wait_for()
    page.evaluate("window.__samePage = true")
    assert page.locator("tr.trace-row").count() == 0
    page.mouse.move(0, 0)  # the pointer resting on the list pauses live mode
    trace_id = _send_checkout_trace(tracer_provider_factory)
    assert page.locator(f"tr.trace-row[data-trace-id='{trace_id}']").count() == 0
    page.clock.run_for(5_000)
    page.locator(f"tr.trace-row[data-trace-id='{trace_id}']").wait_for(timeout=10_000)
    assert page.evaluate("window.__samePage") is True


def test_live_toggle_puts_live_in_the_url(page, live_server):
    page.goto(live_server + "/traces")
    page.check("#live")
    page.wait_for_url(re.compile(r"live=1"))
    page.locator("[data-live]").wait_for()


def test_dragging_across_the_minimap_zooms_the_waterfall_and_reset_restores_it(page, live_server, load_trace):
    _post_fixture(live_server, load_trace, "skew")
    page.goto(f"{live_server}/traces/{0x20:032x}")
    box = page.locator("[data-minimap]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y)
    page.mouse.up()
    width = page.evaluate("getComputedStyle(document.querySelector('.wf-rows')).getPropertyValue('--vw')")
    assert abs(float(width) - 0.25) < 0.02
    assert page.locator("[data-axis] span").first.inner_text() == "150ms"
    page.click("[data-zoom-reset]")
    assert page.locator("[data-axis] span").first.inner_text() == "0ns"


def test_next_error_loads_the_rows_up_to_a_deep_error_not_loaded_yet(page, live_server, load_trace):
    _post_fixture(live_server, load_trace, "huge")
    page.goto(f"{live_server}/traces/{0x50:032x}")
    loaded = page.locator(".wf-row").count()
    order = json.loads(page.locator("[data-waterfall]").get_attribute("data-error-order"))
    (first, first_index), (second, _) = order[0], order[1]
    assert first_index >= loaded, "the latest deepest error is past the first page"
    page.click("button[data-nav-error][data-dir='1']")
    # Over 4,000 rows and then the span's panel: seconds on a busy machine.
    page.locator(f"#row-{first}.focused").wait_for(timeout=30_000)
    assert page.locator(".wf-row").count() > first_index >= loaded
    page.locator(f"#panel-{first} .span-panel").wait_for(timeout=30_000)
    page.click("button[data-nav-error][data-dir='1']")
    page.locator(f"#row-{second}.focused").wait_for()
    page.click("button[data-nav-error][data-dir='-1']")
    page.locator(f"#row-{first}.focused").wait_for()
    assert page.locator(".wf-row.focused").count() == 1
