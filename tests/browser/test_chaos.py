"""The chaos lab in a real browser, on the real demo: run a scenario, read its result,
open the trace it links to."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from demo_services.launcher import Demo
from tests.browser.conftest import OUTPUT
from tests.demo.helpers import TEST_ENV

pytestmark = [pytest.mark.browser, pytest.mark.demo, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with Demo(data_dir=tmp_path_factory.mktemp("chaos-browser"), env=TEST_ENV, out=io.StringIO()) as running:
        yield running


def test_a_fault_set_on_the_page_reaches_the_service_and_reset_all_clears_it(page, demo: Demo):
    page.goto(demo.ui_url + "/chaos")
    row = page.locator("tr[data-instance='inventory-2']")
    row.get_by_label("latency ms of inventory-2").fill("30")
    row.get_by_label("out of stock").check()
    row.get_by_role("button", name="Apply").click()
    page.locator("tr[data-instance='inventory-2'] input[name='latency_ms'][value='30']").wait_for()
    assert demo.control("inventory-2")["latency_ms"] == 30
    assert demo.control("inventory-2")["out_of_stock"] is True
    page.get_by_role("button", name="Reset all").click()
    page.locator("tr[data-instance='inventory-2'] input[name='latency_ms'][value='0']").wait_for()
    assert demo.control("inventory-2")["latency_ms"] == 0
    assert demo.control("inventory-2")["out_of_stock"] is False


def test_payment_declined_from_the_page_to_its_compensated_trace(page, demo: Demo):
    OUTPUT.mkdir(exist_ok=True)
    page.goto(demo.ui_url + "/chaos")
    assert page.locator("tr[data-instance='inventory-2']").count() == 1
    page.screenshot(path=str(OUTPUT / "chaos-page.png"), full_page=True)
    with page.expect_navigation(url=lambda url: "/chaos/experiments/" in url):
        page.get_by_role("button", name="Run payment declined").click()
    verdict = page.locator("#verdict.verdict-passed")
    verdict.wait_for(timeout=60_000)
    assert "the hypothesis held" in verdict.inner_text()
    assert "compensated" in page.locator("table.sagas").inner_text()
    page.screenshot(path=str(OUTPUT / "chaos-result.png"), full_page=True)
    with page.expect_navigation(url=lambda url: "/traces/" in url):
        page.locator("#first-failing a").click()
    page.locator(".wf-name", has_text="saga order compensation create_order").first.wait_for()
    page.locator(".wf-name", has_text="saga order").first.click()
    panel = page.locator(".span-panel")
    panel.wait_for()
    assert "saga.outcome" in panel.inner_text() and "compensated" in panel.inner_text()
    page.screenshot(path=str(OUTPUT / "chaos-trace.png"), full_page=True)


def test_stop_and_start_an_instance_from_the_page(page, demo: Demo):
    page.goto(demo.ui_url + "/chaos")
    page.get_by_role("button", name="stop inventory-1").click()
    stopped = page.locator("tr[data-instance='inventory-1'][data-state='stopped']")
    stopped.wait_for()
    assert "stopped" in stopped.inner_text() and "inventory-1" not in demo.pids()
    page.get_by_role("button", name="start inventory-1").click()
    page.locator("tr[data-instance='inventory-1'][data-state='running']").wait_for(timeout=45_000)
    assert "inventory-1" in demo.pids()
