"""The waterfall in a real browser: a breaker's marker and the call it refused, the event
shown on hover and on keyboard focus, Find over status messages, "Next error" from the
deepest error, rows and bars that open their span, and labels that stay beside their bars."""

from __future__ import annotations

import urllib.request

import pytest

from tests.browser.conftest import OUTPUT

pytestmark = pytest.mark.browser

PATTERNS = f"{0x70:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def _post_patterns(live_server: str, load_trace) -> None:
    request = urllib.request.Request(
        f"{live_server}/v1/traces", data=load_trace("patterns"), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_breaker_marker_rejected_badge_find_and_next_error(page, live_server, load_trace):
    _post_patterns(live_server, load_trace)
    page.goto(f"{live_server}/traces/{PATTERNS}")

    marker = page.locator(f"#row-{sid(10)} .wf-event.ev-breaker")
    assert marker.is_visible()
    badge = page.locator(f"#row-{sid(12)} .badge-rejected")
    assert badge.is_visible() and badge.inner_text() == "rejected: breaker open"

    tip = page.locator("#wf-tip")
    marker.hover()
    tip.wait_for(state="visible")
    assert "circuit_breaker.state_change" in tip.inner_text()
    assert "orders->payment: closed → open after 5 failures" in tip.inner_text()
    page.mouse.move(5, 5)
    tip.wait_for(state="hidden")

    # Keyboard: from the span's name, Tab reaches its marker, which shows the event.
    page.locator(f"#row-{sid(10)} .wf-name").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('ev-breaker')")
    tip.wait_for(state="visible")
    assert "+85ms into the span" in tip.inner_text()
    page.keyboard.press("Escape")
    tip.wait_for(state="hidden")

    # The failover's hostile text stays text in the tooltip.
    page.locator(f"#row-{sid(7)} .wf-event").hover()
    assert "connection <refused>" in tip.inner_text()

    page.screenshot(path=str(_output("waterfall-patterns.png")), full_page=True)

    page.fill("input[name=q]", "declined")
    page.press("input[name=q]", "Enter")
    page.locator(".match-count").wait_for()
    assert page.locator(".match-count").inner_text() == "1 match"
    assert page.locator(".wf-row.is-match").get_attribute("id") == f"row-{sid(11)}"

    page.click("button[data-nav-error][data-dir='1']")
    focused = page.locator(".wf-row.focused")
    assert focused.get_attribute("id") == f"row-{sid(11)}", "the deepest error (payment's) comes first"
    page.locator(f"#panel-{sid(11)} .span-panel").wait_for()
    assert "card processor declined the connection" in page.locator(f"#panel-{sid(11)}").inner_text()
    assert page.evaluate("document.activeElement.closest('.wf-row').id") == f"row-{sid(11)}"

    page.click("button[data-nav-error][data-dir='1']")
    assert page.locator(".wf-row.focused").get_attribute("id") == f"row-{sid(12)}", "then the rejected retry"
    page.locator(f"#panel-{sid(12)} .span-panel").wait_for()
    assert "rejected: breaker open" in page.locator(f"#panel-{sid(12)} .span-panel h3").inner_text()
    assert page.locator(f"#panel-{sid(11)} .span-panel").count() == 0, "the panel it opened before is closed"
    page.screenshot(path=str(_output("waterfall-next-error.png")), full_page=True)


def test_clicking_a_bar_or_a_row_opens_its_span_and_again_closes_it(page, live_server, load_trace):
    _post_patterns(live_server, load_trace)
    page.goto(f"{live_server}/traces/{PATTERNS}")
    page.locator(f"#row-{sid(5)} .wf-bar").click()
    page.locator(f"#panel-{sid(5)} .span-panel").wait_for()
    page.locator(f"#row-{sid(5)} > .wf-line").click(position={"x": 5, "y": 5})
    page.locator(f"#panel-{sid(5)} .span-panel").wait_for(state="detached")
    page.locator(f"#row-{sid(6)} .wf-label").click(position={"x": 300, "y": 5})
    page.locator(f"#panel-{sid(6)} .span-panel").wait_for()


def test_duration_labels_stay_in_the_track_and_off_other_bars(page, live_server, load_trace):
    _post_patterns(live_server, load_trace)
    page.goto(f"{live_server}/traces/{PATTERNS}")
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('.wf-track')).map(t => ({
            track: t.getBoundingClientRect().toJSON(),
            bar: t.querySelector('.wf-bar').getBoundingClientRect().toJSON(),
            label: t.querySelector('.wf-dur').getBoundingClientRect().toJSON(),
            inside: t.querySelector('.wf-dur').classList.contains('at-inside'),
        }))"""
    )
    assert len(boxes) == 14
    for box in boxes:
        track, bar, label = box["track"], box["bar"], box["label"]
        assert track["left"] <= label["left"] and label["right"] <= track["right"], box
        if box["inside"]:
            assert bar["left"] <= label["left"] and label["right"] <= bar["right"], box
        else:
            assert label["right"] <= bar["left"] or label["left"] >= bar["right"], box


def _output(name: str):
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT / name
