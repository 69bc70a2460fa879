"""The landing page in a real browser: htmx loads, spans sent by the SDK appear."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_overview_lists_a_service_sent_by_the_sdk_and_escapes_its_name(page, live_server, tracer_provider_factory):
    provider = tracer_provider_factory("<script>alert(1)</script>-svc")
    with provider.get_tracer("t").start_as_current_span("<b>checkout</b>"):
        pass
    provider.force_flush()
    page.goto(live_server + "/")
    services = page.locator("table.health tr.service a")
    services.first.wait_for()
    assert services.first.inner_text() == "<script>alert(1)</script>-svc"
    assert "<b>checkout</b>" in page.locator("table.traces").inner_text()
    assert page.evaluate("typeof htmx") == "object", "htmx did not load from static/vendor"


def test_overview_refreshes_itself_when_new_traces_arrive(page, live_server, tracer_provider_factory):
    # The browser's clock is Playwright's: the page's 5 s refresh timer is run at once
    # instead of waited for.
    page.clock.install()
    page.goto(live_server + "/")
    page.locator("text=No service has sent spans yet").wait_for()
    provider = tracer_provider_factory("late-service")
    with provider.get_tracer("t").start_as_current_span("arrives-later"):
        pass
    provider.force_flush()
    assert page.locator("table.health tr.service", has_text="late-service").count() == 0
    page.clock.run_for(5_000)
    page.locator("table.health tr.service", has_text="late-service").wait_for(timeout=10_000)
    assert page.locator("table.health tr.service", has_text="late-service").count() == 1
