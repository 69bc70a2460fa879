"""Every page at phone, tablet and wide-screen width, in light and dark, in real chromium.

One app on a loopback port holds fixture traces (the patterns and exception fixtures, sent as
OTLP/JSON, and real SDK spans: an order flow with a failed payment, a breaker that opened, a
compensated saga) and a stored chaos experiment; a second one requires a token and holds
nothing, for the login refusal and the empty states. Each page must fit its width (no
sideways scroll of the page itself), the collapsed nav at phone width must open and lead
somewhere, with or without script, axe-core (node_modules/axe-core, installed by npm from
package.json) must find no serious or critical violation in either colour scheme, every
control on a page must be reachable with Tab, and the scripts a page loads besides htmx stay
under 50 KB. A screenshot of every page at each width, and at wide-screen width in the dark
scheme, goes to test-output/widths/.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from werkzeug.serving import make_server

from app import create_app
from app.settings import Settings
from collectors.store import SpanStore
from collectors.store.experiments import DONE, Experiment
from tests.app import pattern_spans
from tests.browser.conftest import OUTPUT
from tests.conftest import FIXTURES
from tests.helpers import free_port

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
# Records what each Tab focuses, so the keys are read back once rather than after every press.
RECORD_FOCUS = f"""() => {{ window.__reached = new Set();
  document.addEventListener('focusin', e => window.__reached.add(({KEY})(e.target))); }}"""
# Settled: loaded, and no htmx request (such as the registry's instances) still on its way.
SETTLED = "() => !document.querySelector('.htmx-request, .registry-instances > .loading')"


@contextmanager
def _serving(data: Path, **options: object) -> Iterator[tuple[str, SpanStore]]:
    """The app on its own SQLite file, served on a loopback port in a thread; yields its URL
    and its store."""
    settings = Settings(
        data_dir=str(data),
        database_url=f"sqlite:///{data / 'spans.db'}",
        registry_url=f"http://127.0.0.1:{free_port()}",
        prune_interval_s=0,
        **options,
    )
    store = SpanStore.from_url(settings.store_url)
    server = make_server("127.0.0.1", 0, create_app(settings, store=store), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", store
    finally:
        server.shutdown()
        thread.join(timeout=5)
        store.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app holding fixture traces, and the path of each page to visit."""
    began = time.time_ns()
    with _serving(tmp_path_factory.mktemp("widths")) as (ui, store):
        providers: list[TracerProvider] = []

        def factory(service: str, **resource: object) -> TracerProvider:
            provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{ui}/v1/traces")))
            providers.append(provider)
            return provider

        for name in ("patterns", "exception"):
            body = (FIXTURES / "traces" / f"{name}.json").read_bytes()
            answer = requests.post(
                f"{ui}/v1/traces", data=body, headers={"Content-Type": "application/json"}, timeout=10
            )
            assert answer.ok, answer.text
        failed = pattern_spans.order_flow(factory, fail_payment=True)
        passed = pattern_spans.order_flow(factory)
        pattern_spans.breaker_opens(factory)
        pattern_spans.saga(factory, "order-17", ["create", "pay", "ship"], 1)
        pattern_spans.saga(factory, "order-18", ["create", "pay", "ship"], None)
        for provider in providers:
            provider.shutdown()
        _experiment(store, began, [failed, passed])
        pages = {
            "overview": "/",
            "traces": "/traces?range=6h",
            "trace": f"/traces/{PATTERNS_TRACE}",
            "trace-events": f"/traces/{PATTERNS_TRACE}/events",
            "compare": f"/traces/compare?a={passed}&b={failed}",
            "services": "/services",
            "node": "/services/node?name=orders",
            "edge": "/services/edge?parent=orders&child=payment",
            "breakers": "/breakers",
            "sagas": "/sagas",
            "saga": "/sagas/order-17",
            "registry": "/registry",
            "chaos": "/chaos",
            "experiment": "/chaos/experiments/e-widths",
            "learn": "/learn",
            "not-found": "/traces/" + "f" * 32,
        }
        yield {"ui": ui, "pages": pages}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app requiring a token and holding no span; yields its URL."""
    with _serving(tmp_path_factory.mktemp("widths-empty"), auth_token=TOKEN) as (ui, _):
        yield ui


def _experiment(store: SpanStore, began: int, trace_ids: list[str]) -> None:
    """A finished payment-declined experiment over the spans just sent, as the chaos lab stores one;
    restored over 30 s ago, so its page has its after-phase and no longer refreshes itself."""
    restored = time.time_ns() - 31_000_000_000
    store.start_experiment(
        Experiment(
            "e-widths",
            "payment-declined",
            DONE,
            "Every order is refused with 402; each saga compensates exactly its completed steps, in reverse.",
            "failed",
            "127.0.0.1",
            min(began, restored) - 10_000_000_000,
            restored,
            changes=[{"instance_id": "payment", "service": "payment", "decline": True}],
            checks=[
                {"name": "every order is refused with 402", "passed": True, "detail": "2 of 2 orders answered 402"},
                {"name": "each saga compensates its completed steps", "passed": False, "detail": "1 of 2 compensated"},
            ],
            trace_ids=trace_ids,
            findings={
                "restored_ns": restored,
                "sagas": [
                    {
                        "saga_id": "order-17",
                        "outcome": "compensated",
                        "failed_step": "pay",
                        "completed": ["create"],
                        "compensated": ["create"],
                    }
                ],
                "transitions": {"orders->payment": [[restored, "closed", "open"]]},
                "first_failing_trace": trace_ids[0],
            },
        ),
        exclusive=False,
    )


def _visit(page, url: str) -> int:
    answer = page.goto(url)
    page.wait_for_function(SETTLED)
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
            status = _visit(page, site["ui"] + path)
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
            page.goto(site["ui"] + "/learn")
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
            if script:
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / "menu-open-phone.png"))
            assert page.evaluate(FITS)
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Overview"
            with page.expect_navigation():
                traces.click()
            assert page.url.startswith(site["ui"] + "/traces")
            assert page.locator("header.top nav a[aria-current='page']").text_content() == "Traces"
            assert not page.locator("header.top nav a", has_text="Sagas").is_visible()
        finally:
            context.close()


def test_the_wide_nav_shows_every_link_without_a_menu(browser, site) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        page.goto(site["ui"] + "/services")
        assert not page.locator(".nav-menu > summary").is_visible()
        links = page.locator("header.top nav a")
        assert links.count() == 9 and all(links.nth(i).is_visible() for i in range(9))
        assert page.locator("header.top nav a[aria-current='page']").text_content() == "Services"
        assert page.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"
        assert requests.get(site["ui"] + "/static/favicon.svg", timeout=5).text.startswith("<svg")
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


def test_axe_finds_no_serious_violation_on_any_page_light_or_dark(browser, site, guarded) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm install` (make setup does) to install axe-core from package.json")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    found = {}
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        urls = {name: site["ui"] + path for name, path in site["pages"].items()}
        urls["login-refused"] = guarded + "/traces"
        for name, url in urls.items():
            _visit(page, url)
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                if violations := _axe(page):
                    found[f"{name} ({scheme})"] = violations
            page.screenshot(path=str(SHOTS / f"{name}-wide-dark.png"))
    finally:
        context.close()
    report = SHOTS / "axe.json"
    report.unlink(missing_ok=True)
    if found:
        SHOTS.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(found, indent=1))
    assert not found, f"axe-core's serious and critical violations (also in test-output/widths/axe.json): {found}"


def test_axe_finds_no_serious_violation_at_phone_width_with_the_menu_open(browser, site) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm install` (make setup does) to install axe-core from package.json")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    found = {}
    try:
        for name, path in site["pages"].items():
            _visit(page, site["ui"] + path)
            page.locator(".nav-menu > summary").click()
            if violations := _axe(page):
                found[name] = violations
    finally:
        context.close()
    assert not found, f"axe-core's serious and critical violations at 390 px: {found}"


def test_every_control_is_reachable_by_keyboard(browser, site) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    missed = {}
    try:
        for name, path in site["pages"].items():
            _visit(page, site["ui"] + path)
            wanted = set(page.evaluate(CONTROLS))
            page.evaluate(RECORD_FOCUS)
            for _ in range(2 * len(wanted) + 10):
                page.keyboard.press("Tab")
            reached = set(page.evaluate("[...window.__reached]"))
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
        assert _visit(page, guarded + "/") == 401
        page.screenshot(path=str(SHOTS / "login-refused-phone.png"), full_page=True)
        assert "token" in page.locator(".error").inner_text()
        assert page.evaluate(FITS)
        page.goto(f"{guarded}/?token={TOKEN}")
        expected = {
            "/": "No service has sent spans yet",
            "/traces": "No service has sent a span yet",
            "/services": "No calls between services",
            "/breakers": "No circuit breaker in this window",
            "/sagas": "No saga",
        }
        for path, words in expected.items():
            assert _visit(page, guarded + path) == 200
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
        html = requests.get(site["ui"] + path, timeout=10).text
        srcs = set(re.findall(r'<script[^>]*\bsrc="([^"]+)"', html))
        assert srcs, path
        mine = {s.split("?")[0] for s in srcs if "/vendor/htmx" not in s}
        loaded |= mine
        size = sum((ROOT / s.lstrip("/")).stat().st_size for s in mine)
        assert size < SCRIPT_BUDGET, f"{path} loads {size} bytes of script besides htmx"
    total = sum((ROOT / s.lstrip("/")).stat().st_size for s in loaded)
    assert total < SCRIPT_BUDGET, f"the pages load {total} bytes of script besides htmx: {sorted(loaded)}"
