"""Every page at phone, tablet and wide-screen width, in light and dark, in real chromium.

One real `spyglass serve` holds fixture traces (the patterns and exception fixtures, an order
flow with a failed payment, a breaker that opened, a compensated saga); a second one requires
a token and holds nothing, for the login refusal and the empty states. Each page must fit
its width (no sideways scroll of the page itself), the collapsed nav at phone width must open
and lead somewhere, with or without script, axe-core (node_modules/axe-core, installed by npm
from package.json) must find no serious or critical violation in either colour scheme, every
control on a page must be reachable with Tab, and the scripts a page loads besides htmx stay
under 50 KB. A screenshot of every page at each width goes to test-output/widths/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.app import pattern_spans
from tests.browser.conftest import OUTPUT
from tests.conftest import FIXTURES
from tests.helpers import ServeProcess, free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = OUTPUT / "widths"
WIDTHS = {"phone": (390, 844), "tablet": (768, 1024), "wide": (1440, 900)}
TOKEN = "every-width-token"
PATTERNS_TRACE = "00000000000000000000000000000070"
SCRIPT_BUDGET = 50 * 1024

FITS = "document.documentElement.scrollWidth <= window.innerWidth"
# The outermost elements that stick out past the right edge (not inside a box that scrolls).
OVERFLOWING = """() => [...document.querySelectorAll('body *')].filter(el => {
  if (el.getBoundingClientRect().right <= window.innerWidth + 0.5) return false;
  for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
    if (getComputedStyle(up).overflowX !== 'visible') return false;
    if (up.getBoundingClientRect().right > window.innerWidth + 0.5) return false;
  }
  return true;
}).slice(0, 4).map(el => el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined
  ? '.' + el.className.split(' ').join('.') : '') + ' ' + Math.round(el.getBoundingClientRect().right))"""
# Every control a keyboard user must be able to reach: visible, enabled, not taken out of the tab
# order, named by what it is and says (a live page may swap a control for an identical new one).
KEY = """el => [el.tagName, el.getAttribute('href') || '', el.name || '', el.id || '',
  (el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 60)].join('|')"""
CONTROLS = f"""() => [...document.querySelectorAll(
  'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])')]
  .filter(el => !el.disabled && el.checkVisibility({{visibilityProperty: true}}))
  .map({KEY})"""
FOCUSED = f"() => document.activeElement && document.activeElement !== document.body ? ({KEY})(document.activeElement) : null"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real server holding fixture traces, and the path of each page to visit."""
    data = tmp_path_factory.mktemp("widths") / "data"
    server = ServeProcess(data, "--registry-url", f"http://127.0.0.1:{free_port()}")
    providers: list[TracerProvider] = []

    def factory(service: str, **resource: object) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.otlp}/v1/traces")))
        providers.append(provider)
        return provider

    try:
        for name in ("patterns", "exception"):
            body = (FIXTURES / "traces" / f"{name}.json").read_bytes()
            answer = requests.post(
                f"{server.otlp}/v1/traces", data=body, headers={"Content-Type": "application/json"}, timeout=10
            )
            assert answer.ok, answer.text
        failed = pattern_spans.order_flow(factory, fail_payment=True)
        passed = pattern_spans.order_flow(factory)
        pattern_spans.breaker_opens(factory)
        pattern_spans.saga(factory, "order-17", ["create", "pay", "ship"], 1)
        pattern_spans.saga(factory, "order-18", ["create", "pay", "ship"], None)
        for provider in providers:
            provider.shutdown()
        pages = {
            "overview": "/",
            "traces": "/traces?range=6h",
            "trace": f"/traces/{PATTERNS_TRACE}",
            "compare": f"/traces/compare?a={passed}&b={failed}",
            "services": "/services",
            "node": "/services/node?name=orders",
            "edge": "/services/edge?parent=orders&child=payment",
            "breakers": "/breakers",
            "sagas": "/sagas",
            "saga": "/sagas/order-17",
            "registry": "/registry",
            "chaos": "/chaos",
            "learn": "/learn",
            "not-found": "/traces/" + "f" * 32,
        }
        yield {"server": server, "pages": pages}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A real server that requires a token and holds no span."""
    server = ServeProcess(
        tmp_path_factory.mktemp("widths-empty") / "data",
        "--registry-url",
        f"http://127.0.0.1:{free_port()}",
        env={"SPYGLASS_AUTH_TOKEN": TOKEN},
    )
    try:
        yield server
    finally:
        server.stop()


def _visit(page, url: str) -> int:
    answer = page.goto(url, wait_until="networkidle")
    return answer.status


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_its_width_without_scrolling_sideways(browser, site, width) -> None:
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h})
    page = context.new_page()
    page.set_default_timeout(15_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    wide = {}
    try:
        for name, path in site["pages"].items():
            status = _visit(page, site["server"].ui + path)
            assert status == (404 if name == "not-found" else 200), name
            page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
            if not page.evaluate(FITS):
                wide[name] = (page.evaluate("document.documentElement.scrollWidth"), page.evaluate(OVERFLOWING))
    finally:
        context.close()
    assert not wide, f"pages wider than {w} px (their scrollWidth): {wide}"


def test_the_phone_menu_opens_and_leads_to_a_page_with_and_without_script(browser, site) -> None:
    for script in (True, False):
        context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=script)
        page = context.new_page()
        page.set_default_timeout(10_000)
        try:
            page.goto(site["server"].ui + "/learn")
            traces = page.locator("header.top nav a", has_text="Traces")
            assert not traces.is_visible(), "the nav is not folded at phone width"
            assert page.locator("header.top nav a[aria-current='page']").text_content() == "Learn"
            # By keyboard: Tab reaches the menu after the skip link and the brand; Enter opens it.
            page.keyboard.press("Tab")
            page.keyboard.press("Tab")
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent.trim()").endswith("Menu")
            page.keyboard.press("Enter")
            assert traces.is_visible()
            assert page.evaluate(FITS)
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Overview"
            with page.expect_navigation():
                traces.click()
            assert page.url.startswith(site["server"].ui + "/traces")
            assert page.locator("header.top nav a[aria-current='page']").text_content() == "Traces"
            assert not page.locator("header.top nav a", has_text="Sagas").is_visible()
        finally:
            context.close()


def test_the_wide_nav_shows_every_link_without_a_menu(browser, site) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        page.goto(site["server"].ui + "/services")
        assert not page.locator(".nav-menu > summary").is_visible()
        links = page.locator("header.top nav a")
        assert links.count() == 9 and all(links.nth(i).is_visible() for i in range(9))
        assert page.locator("header.top nav a[aria-current='page']").text_content() == "Services"
        assert page.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"
        assert requests.get(site["server"].ui + "/static/favicon.svg", timeout=5).text.startswith("<svg")
    finally:
        context.close()


def _axe(page) -> list[dict]:
    """axe-core's serious and critical violations on the current page."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"rule": v["id"], "impact": v["impact"], "where": [n["target"] for n in v["nodes"][:3]], "help": v["help"]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_any_page(browser, site, guarded, scheme) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm install` (make setup does) to install axe-core from package.json")
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(15_000)
    found = {}
    try:
        urls = {name: site["server"].ui + path for name, path in site["pages"].items()}
        urls["login-refused"] = guarded.ui + "/traces"
        for name, url in urls.items():
            _visit(page, url)
            if violations := _axe(page):
                found[name] = violations
    finally:
        context.close()
    report = SHOTS / f"axe-{scheme}.json"
    report.unlink(missing_ok=True)
    if found:
        SHOTS.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(found, indent=1))
    assert not found, f"axe-core's serious and critical violations (also in test-output/widths/axe-{scheme}.json): {found}"


def test_every_control_is_reachable_by_keyboard(browser, site) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    missed = {}
    try:
        for name in ("overview", "traces", "trace", "compare", "services", "saga", "chaos", "learn"):
            _visit(page, site["server"].ui + site["pages"][name])
            wanted = set(page.evaluate(CONTROLS))
            reached = set()
            for _ in range(2 * len(wanted) + 10):
                page.keyboard.press("Tab")
                reached.add(page.evaluate(FOCUSED))
                if reached >= wanted:
                    break
            if wanted - reached:
                missed[name] = sorted(wanted - reached)[:6]
    finally:
        context.close()
    assert not missed, missed


def test_an_empty_store_says_what_to_do_next_on_every_page(browser, guarded) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        assert _visit(page, guarded.ui + "/") == 401
        page.screenshot(path=str(SHOTS / "login-refused-phone.png"), full_page=True)
        assert "token" in page.locator(".error").inner_text()
        assert page.evaluate(FITS)
        page.goto(f"{guarded.ui}/?token={TOKEN}")
        expected = {
            "/": "No service has sent spans yet",
            "/traces": "No service has sent a span yet",
            "/services": "No calls between services",
            "/breakers": "No circuit breaker in this window",
            "/sagas": "No saga",
        }
        for path, words in expected.items():
            assert _visit(page, guarded.ui + path) == 200
            empty = page.locator("p.empty", has_text=words).first
            assert empty.is_visible(), path
            # An empty state points somewhere: a link onward or the setting to use.
            assert empty.locator("a, code").count() >= 1, f"{path}: {empty.inner_text()!r} says nothing of what to do"
            assert page.evaluate(FITS), path
            page.screenshot(path=str(SHOTS / f"empty{path.replace('/', '-') or '-overview'}-phone.png"))
    finally:
        context.close()


def test_page_scripts_besides_htmx_stay_under_50_kb(site) -> None:
    loaded: set[str] = set()
    for path in site["pages"].values():
        html = requests.get(site["server"].ui + path, timeout=10).text
        srcs = set(re.findall(r'<script[^>]*\bsrc="([^"]+)"', html))
        assert srcs, path
        mine = {s.split("?")[0] for s in srcs if "/vendor/htmx" not in s}
        loaded |= mine
        size = sum((ROOT / s.lstrip("/")).stat().st_size for s in mine)
        assert size < SCRIPT_BUDGET, f"{path} loads {size} bytes of script besides htmx"
    total = sum((ROOT / s.lstrip("/")).stat().st_size for s in loaded)
    assert total < SCRIPT_BUDGET, f"the pages load {total} bytes of script besides htmx: {sorted(loaded)}"
