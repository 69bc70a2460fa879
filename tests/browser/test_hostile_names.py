"""Names chosen by an attacker, sent as real OTLP spans, on every page that shows or links them.

Service, operation, breaker and saga names hold ``../``, ``%2F``, ``?``, ``#``, quotes and
markup. On every page, in real chromium against a real `spyglass serve`: no script runs (no
dialog, ``window.__pwned`` unset, no Content-Security-Policy violation), each link opens the
thing it names, and htmx never swaps anything but an HTML fragment into the page.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.app import pattern_spans
from tests.conftest import POSTGRES_URL
from tests.helpers import ServeProcess, free_port

pytestmark = pytest.mark.browser

PWN = "window.__pwned=(window.__pwned||0)+1;alert(1)"
TRAVERSAL = "../../api/services"
MARKUP = f'<img src=x onerror="{PWN}">'
SLASHED = "a%2Fb?x=1#top 'q\" <b>bold</b>"
SERVICES = (TRAVERSAL, MARKUP, SLASHED)
BREAKER = f"{MARKUP}->../../api/v1/breakers"
SAGA_IDS = ("../../api/v1/sagas", "..", "s%2F?x=1#h 'q\"", f'<svg onload="{PWN}">', "/leading/slash")
STEP = f"<script>{PWN}</script>"

WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_option(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    """The `spyglass serve` options of an empty store: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield ()
        return
    if not POSTGRES_URL:
        pytest.skip("SPYGLASS_TEST_POSTGRES_URL is not set")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield ("--database-url", f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}")
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, store_option: tuple[str, ...]) -> Iterator[dict]:
    """A real server holding a call chain, a breaker and sagas, all named by the attacker."""
    data = tmp_path_factory.mktemp("hostile") / "data"
    server = ServeProcess(data, "--registry-url", f"http://127.0.0.1:{free_port()}", *store_option)
    providers: list[TracerProvider] = []

    def factory(service: str, **resource: object) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.otlp}/v1/traces")))
        providers.append(provider)
        return provider

    try:
        trace_id = _call_chain(factory)
        other_id = _call_chain(factory)
        breaker_trace, _ = _breaker_opens(factory)
        saga_traces = {sid: pattern_spans.saga(factory, sid, ["create", STEP], 1, name=MARKUP) for sid in SAGA_IDS}
        for provider in providers:
            provider.shutdown()
        yield {
            "server": server,
            "trace_id": trace_id,
            "other_id": other_id,
            "breaker_trace": breaker_trace,
            "saga_traces": saga_traces,
        }
    finally:
        server.stop()


def _call_chain(factory) -> str:
    """TRAVERSAL calls MARKUP, which calls SLASHED; operations are named with markup too."""
    a, b, c = (pattern_spans.tracer(factory, name) for name in SERVICES)
    with a.start_as_current_span(f"GET /{MARKUP}", kind=SpanKind.SERVER) as root:
        with a.start_as_current_span(f"call {MARKUP}", kind=SpanKind.CLIENT):
            with b.start_as_current_span(STEP, kind=SpanKind.SERVER, attributes={"note": MARKUP}):
                with b.start_as_current_span("call ../", kind=SpanKind.CLIENT) as call:
                    with c.start_as_current_span(SLASHED, kind=SpanKind.SERVER) as failing:
                        failing.set_status(Status(StatusCode.ERROR, MARKUP))
                    call.set_status(Status(StatusCode.ERROR, STEP))
        return format(root.get_span_context().trace_id, "032x")


def _breaker_opens(factory) -> tuple[str, str]:
    caller = pattern_spans.tracer(factory, TRAVERSAL)
    attrs = {"circuit_breaker.name": BREAKER, "circuit_breaker.state": "closed"}
    with caller.start_as_current_span("call", kind=SpanKind.CLIENT, attributes=attrs) as call:
        call.set_status(Status(StatusCode.ERROR, MARKUP))
        call.add_event(
            "circuit_breaker.state_change",
            {
                "circuit_breaker.name": BREAKER,
                "circuit_breaker.state.from": "closed",
                "circuit_breaker.state.to": "open",
                "circuit_breaker.failure_count": 1,
            },
        )
        ctx = call.get_span_context()
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


@pytest.fixture
def watched(page) -> Iterator[object]:
    """The page, recording dialogs, CSP violations and every htmx answer."""
    page.add_init_script(WATCH)
    page.dialogs = []
    page.htmx_answers = []

    def on_dialog(dialog) -> None:
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_response(response) -> None:
        if response.request.headers.get("hx-request"):
            page.htmx_answers.append((response.url, response.headers.get("content-type", "")))

    page.on("dialog", on_dialog)
    page.on("response", on_response)
    yield page
    _assert_nothing_ran(page)


def _assert_nothing_ran(page) -> None:
    page.wait_for_timeout(150)  # an onerror of a broken <img> would fire by now
    assert page.dialogs == [], f"a dialog opened on {page.url}"
    assert page.evaluate("window.__pwned") is None, f"the payload ran on {page.url}"
    assert page.evaluate("window.__violations") == [], f"something tried to run on {page.url}"
    for url, content_type in page.htmx_answers:
        assert not urlsplit(url).path.startswith("/api/"), f"htmx fetched {url}"
        assert content_type.startswith("text/html"), f"htmx got {content_type} from {url}"


def _visit(page, url: str) -> None:
    page.goto(url)
    _assert_nothing_ran(page)


def test_overview_search_and_trace_pages_show_the_names_as_text(watched, hostile) -> None:
    ui = hostile["server"].ui
    _visit(watched, ui + "/")
    assert MARKUP in watched.locator("table.health").inner_text()
    _visit(watched, ui + "/traces?service=" + quote(MARKUP, safe="") + "&range=24h")
    link = watched.locator("a.trace-link").first
    assert TRAVERSAL in link.inner_text()
    link.click()
    watched.wait_for_url(f"{ui}/traces/*")
    assert watched.url.split("?")[0] in (f"{ui}/traces/{hostile['trace_id']}", f"{ui}/traces/{hostile['other_id']}")
    row = watched.locator(".wf-row", has_text=STEP).first
    row.locator("a.wf-name").click()
    panel = row.locator(".wf-panel")
    panel.get_by_text(MARKUP).first.wait_for()
    _assert_nothing_ran(watched)
    _visit(watched, f"{ui}/traces/{hostile['trace_id']}/stats")
    assert STEP in watched.locator("main").inner_text()
    _visit(watched, f"{ui}/traces/compare?a={hostile['trace_id']}&b={hostile['other_id']}")
    assert SLASHED in watched.locator("table.diff").inner_text()
    watched.locator("a.open-b").click()
    watched.wait_for_url(f"{ui}/traces/{hostile['other_id']}")


def test_search_with_a_hostile_filter_keeps_it_in_the_query_string(watched, hostile) -> None:
    ui = hostile["server"].ui
    _visit(watched, ui + "/traces?range=24h")
    watched.select_option("select[name=service]", SLASHED)
    watched.locator("form.search-form button[type=submit]").click()
    watched.locator("a.trace-link").first.wait_for()
    watched.wait_for_url(lambda url: "service=" in url)
    assert watched.locator("select[name=service]").input_value() == SLASHED
    _assert_nothing_ran(watched)


@pytest.mark.parametrize("name", SERVICES)
def test_graph_node_links_open_the_node_they_name(watched, hostile, name) -> None:
    ui = hostile["server"].ui
    _visit(watched, ui + "/services?window=1h")
    link = watched.locator("a.node-link").filter(has=watched.locator("title", has_text=name)).first
    href = link.get_attribute("href")
    assert link.get_attribute("hx-get") == href and href.startswith("/services/node?")
    link.click()
    detail = watched.locator("#detail .node-detail")
    detail.wait_for()
    assert detail.locator("h2").inner_text() == name
    assert watched.url.startswith(ui + "/services")
    _assert_nothing_ran(watched)
    _visit(watched, ui + href)  # the same link opened without htmx, as a new tab would
    assert watched.locator(".node-detail h2").inner_text() == name


def test_graph_edge_links_open_the_edge_they_name(watched, hostile) -> None:
    ui = hostile["server"].ui
    _visit(watched, ui + "/services?window=1h")
    edges = watched.locator("a.edge-link")
    pairs = {(e.get_attribute("data-parent"), e.get_attribute("data-child")) for e in edges.all()}
    assert {(TRAVERSAL, MARKUP), (MARKUP, SLASHED)} <= pairs
    for parent, child in ((TRAVERSAL, MARKUP), (MARKUP, SLASHED)):
        ends = [(e, (e.get_attribute("data-parent"), e.get_attribute("data-child"))) for e in edges.all()]
        [edge] = [e for e, pair in ends if pair == (parent, child)]
        edge.locator("path.hit").click(force=True)
        watched.wait_for_function(
            "(want) => document.querySelector('#detail .edge-detail h2')?.textContent === want",
            arg=f"{parent} → {child}",
        )
        trace_link = watched.locator("#detail .edge-detail ul.edge-traces a").first
        assert trace_link.get_attribute("href") in (f"/traces/{hostile['trace_id']}", f"/traces/{hostile['other_id']}")
        _assert_nothing_ran(watched)


def test_breaker_page_names_the_breaker_as_text_and_links_its_trace(watched, hostile) -> None:
    ui = hostile["server"].ui
    _visit(watched, ui + "/breakers?window=1h")
    row = watched.locator("tr.breaker").first
    assert row.get_attribute("data-name") == BREAKER
    assert BREAKER in row.inner_text()
    with watched.expect_navigation():
        row.locator("a.mark").first.click(force=True)
    assert watched.url.startswith(f"{ui}/traces/{hostile['breaker_trace']}?span=")
    _assert_nothing_ran(watched)


@pytest.mark.parametrize("saga_id", SAGA_IDS)
def test_saga_links_open_the_saga_they_name(watched, hostile, saga_id) -> None:
    ui = hostile["server"].ui
    _visit(watched, ui + "/sagas")
    link = watched.locator("table.sagas a").filter(has_text=saga_id)
    link = [a for a in link.all() if a.inner_text() == saga_id][0]
    with watched.expect_navigation():
        link.click()
    assert watched.locator("h1 code").inner_text() == saga_id
    assert STEP in watched.locator(".saga-timeline").inner_text()
    _assert_nothing_ran(watched)
    trace_link = watched.locator("main p a", has_text="trace").first
    with watched.expect_navigation():
        trace_link.click()
    assert watched.url.startswith(f"{ui}/traces/{hostile['saga_traces'][saga_id]}")


def test_registry_page_shows_observed_names_as_text(watched, hostile) -> None:
    _visit(watched, hostile["server"].ui + "/registry?window=1h")
    assert f"{TRAVERSAL} → {MARKUP}" in watched.locator("ul.observed").inner_text()


def test_htmx_never_swaps_json_even_when_pointed_at_the_api(watched, hostile) -> None:
    """The last layers: were a link ever to reach the JSON API, htmx would not swap its answer,
    and markup that got into the page could not run an inline handler."""
    ui = hostile["server"].ui
    _visit(watched, ui + "/services?window=1h")
    watched.evaluate(
        """() => {
          const probe = document.createElement("button");
          probe.id = "probe";
          probe.setAttribute("hx-get", "/api/services");
          probe.setAttribute("hx-target", "#messages");
          document.body.append(probe);
          htmx.process(probe);
        }"""
    )
    with watched.expect_response(lambda r: r.url.endswith("/api/services")) as answer:
        watched.click("#probe")
    assert answer.value.headers["content-type"].startswith("application/json")
    watched.wait_for_timeout(300)
    assert watched.locator("#messages").inner_html() == ""
    assert watched.evaluate("window.__pwned") is None
    watched.evaluate(f"() => document.body.insertAdjacentHTML('beforeend', {MARKUP!r})")
    watched.wait_for_timeout(300)
    assert watched.evaluate("window.__pwned") is None
    assert any("script-src" in v for v in watched.evaluate("window.__violations"))
    watched.htmx_answers.clear()  # the probe's JSON answer was fetched on purpose
    watched.evaluate("window.__violations = []")
