"""The service graph in a real browser, from spans of a generated 50-service topology sent
with the OpenTelemetry SDK: no drawn label overlaps another label or a box, every text fits
its box, hovering a box picks out its calls, zoom and pan by buttons, wheel and keys, the
view survives the live refresh, and the drawing fits a phone's width. Screenshots go to
test-output/."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind

from tests.app import pattern_spans
from tests.app.topology import fifty_services
from tests.browser.conftest import OUTPUT

pytestmark = pytest.mark.browser

KINDS = {"sync": (SpanKind.CLIENT, SpanKind.SERVER), "async": (SpanKind.PRODUCER, SpanKind.CONSUMER)}

# Every drawn box in page pixels: each node's group (its box, texts and rate-limit badge)
# and each edge label (its pill, texts and breaker badge); and every text that must stay
# inside its own box.
BOXES_JS = """() => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const drawn = [];
  document.querySelectorAll('#graph a.node-link g.node').forEach(g => drawn.push(['node ' + g.parentNode.dataset.node, box(g)]));
  document.querySelectorAll('#graph a.edge-link g.label').forEach(g => {
    const a = g.closest('a'); drawn.push(['label ' + a.dataset.parent + ' -> ' + a.dataset.child, box(g)]);
  });
  const spills = [];
  document.querySelectorAll('#graph svg.service-graph g.node').forEach(g => {
    const outer = box(g.querySelector(':scope > rect'));
    g.querySelectorAll(':scope > text').forEach(t => { const b = box(t); if (b[0] < outer[0] || b[2] > outer[2]) spills.push(t.textContent); });
  });
  document.querySelectorAll('#graph svg.service-graph g.label').forEach(g => {
    const outer = box(g.querySelector('rect.pill'));
    g.querySelectorAll('text').forEach(t => { const b = box(t); if (b[0] < outer[0] || b[2] > outer[2]) spills.push(t.textContent); });
  });
  return {drawn, spills};
}"""


def send_topology(factory) -> None:
    providers: dict[str, object] = {}

    def tracer(name):
        if name not in providers:
            providers[name] = pattern_spans.tracer(factory, name)
        return providers[name]

    for caller, callee, mode in fifty_services():
        if mode == "database":
            attrs = {"db.system": "postgresql", "db.name": callee.split(":", 1)[1], "peer.service": callee}
            with tracer(caller).start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes=attrs):
                pass
            continue
        out, into = KINDS["sync" if mode == "lookup" else mode]
        attrs = {"peer.service": "registry", "discovery.service": "svc-00"} if mode == "lookup" else {}
        with tracer(caller).start_as_current_span(f"call {callee}", kind=out, attributes=attrs):
            with tracer(callee).start_as_current_span(f"handle {caller}", kind=into, attributes=attrs):
                pass


def overlapping(drawn):
    out = []
    for i, (a, (ax0, ay0, ax1, ay1)) in enumerate(drawn):
        for b, (bx0, by0, bx1, by1) in drawn[i + 1 :]:
            if ax0 < bx1 - 0.5 and bx0 < ax1 - 0.5 and ay0 < by1 - 0.5 and by0 < ay1 - 0.5:
                out.append((a, b))
    return out


def view_box(page):
    return [float(v) for v in page.locator("#graph svg.service-graph").get_attribute("viewBox").split()]


@pytest.fixture
def fifty(page, live_server, tracer_provider_factory):
    send_topology(tracer_provider_factory)
    pattern_spans.breaker_opens(tracer_provider_factory)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(live_server + "/services?window=15m")
    page.locator("#graph svg.service-graph").wait_for()
    return page


def test_fifty_services_no_label_overlaps_a_label_or_a_box_and_every_text_fits(fifty):
    page = fifty
    assert page.locator("#graph a.node-link").count() >= 50
    result = page.evaluate(BOXES_JS)
    assert len(result["drawn"]) >= 150
    assert overlapping(result["drawn"]) == []
    assert result["spills"] == [], "text wider than its box"
    assert page.locator("#graph g.breaker-badge.state-open").count() >= 1
    assert page.locator("#graph path.line.lookup[data-child='registry']").count() >= 3
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "graph-50-services-1440.png"), full_page=True)
    page.locator("#graph [data-zoom='in']").click()
    page.locator("#graph [data-zoom='in']").click()
    page.screenshot(path=str(OUTPUT / "graph-50-services-1440-zoomed.png"))


def test_hovering_a_box_picks_out_its_calls_and_focus_does_too(fifty):
    page = fifty
    page.locator("#graph a.node-link[data-node='svc-40'] rect").first.hover()
    picked = page.locator("#graph svg.picking path.line.picked")
    ends = {(p.get_attribute("data-parent"), p.get_attribute("data-child")) for p in picked.all()}
    assert ("svc-40", "svc-41") in ends and ("svc-41", "svc-40") in ends
    assert all("svc-40" in pair for pair in ends)
    other = page.locator("#graph path.line[data-parent='gateway']").first
    assert "picked" not in other.get_attribute("class")
    page.mouse.move(1, 1)
    page.locator("#graph a.node-link[data-node='gateway']").focus()
    ends = {p.get_attribute("data-parent") for p in page.locator("#graph path.line.picked").all()}
    assert ends == {"gateway"}


def test_zoom_and_pan_by_buttons_wheel_and_keys_and_the_view_survives_a_refresh(fifty):
    page = fifty
    full = view_box(page)
    assert full[:2] == [0, 0]
    page.locator("#graph [data-zoom='in']").click()
    zoomed = view_box(page)
    assert zoomed[2] < full[2] * 0.7
    view = page.locator("#graph .graph-view")
    view.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    panned = view_box(page)
    assert panned[0] > zoomed[0] and panned[1] > zoomed[1] and panned[2] == zoomed[2]
    page.keyboard.press("+")
    assert view_box(page)[2] < panned[2]
    page.keyboard.press("0")
    assert view_box(page) == full
    box = page.locator("#graph svg.service-graph").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    wheeled = view_box(page)
    assert wheeled[2] < full[2]
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2 - 40, steps=4)
    page.mouse.up()
    dragged = view_box(page)
    assert dragged[0] > wheeled[0] and dragged[1] > wheeled[1]
    # Tab from the view reaches the boxes in the drawing's order, the first column first.
    view.focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.node") == "gateway"
    page.locator("#graph a.node-link[data-node='svc-40']").focus()
    # The live refresh (every 5 s) swaps in a new drawing; the view and the focus stay.
    page.evaluate("document.querySelector('#graph svg.service-graph').dataset.old = '1'")
    page.wait_for_function("() => !document.querySelector('#graph svg.service-graph').dataset.old", timeout=12_000)
    assert view_box(page) == dragged
    assert page.evaluate("document.activeElement.dataset.node") == "svc-40"
    assert page.locator("#graph svg.picking path.line.picked[data-parent='svc-40']").count() >= 1


def test_the_graph_fits_a_phone_and_zooms_to_read(fifty):
    page = fifty
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(page.url)
    svg = page.locator("#graph svg.service-graph")
    svg.wait_for()
    graph_box = page.locator("#graph").bounding_box()
    drawing = svg.bounding_box()
    assert drawing["x"] >= graph_box["x"] and drawing["x"] + drawing["width"] <= graph_box["x"] + graph_box["width"] + 0.5
    assert drawing["width"] > 250, "the drawing is squeezed to a sliver"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "graph-50-services-390.png"), full_page=True)
    for _ in range(4):
        page.locator("#graph [data-zoom='in']").click()
    page.screenshot(path=str(OUTPUT / "graph-50-services-390-zoomed.png"))
    assert view_box(page)[2] < 400


def test_the_demo_sized_graph_is_drawn_at_full_size_on_a_wide_screen(page, live_server, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    pattern_spans.discovery_failover(tracer_provider_factory)
    pattern_spans.breaker_opens(tracer_provider_factory)
    OUTPUT.mkdir(exist_ok=True)
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(live_server + "/services?window=15m")
        svg = page.locator("#graph svg.service-graph")
        svg.wait_for()
        result = page.evaluate(BOXES_JS)
        assert overlapping(result["drawn"]) == [] and result["spills"] == []
        scale = svg.bounding_box()["width"] / view_box(page)[2]
        if width == 1440:
            assert scale > 0.85, f"the graph is shrunk to {scale:.2f} of its size on a wide screen"
        page.screenshot(path=str(OUTPUT / f"graph-demo-{width}.png"), full_page=True)
