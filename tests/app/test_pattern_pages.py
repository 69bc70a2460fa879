"""The pattern pages and their /api/v1 JSON over spans sent by the OpenTelemetry SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from bs4 import BeautifulSoup
from opentelemetry import trace

from app import create_app
from tests.app import pattern_spans
from tests.helpers import ROOT, free_port, start_process, stop_process, wait_until


def get_json(client, path: str, status: int = 200) -> dict:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return json.loads(response.get_data())


def get_html(client, path: str, status: int = 200, **headers: str) -> BeautifulSoup:
    response = client.get(path, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


# -- service graph -------------------------------------------------------------------------------


def test_graph_json_has_services_peers_async_edge_and_red(client, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    pattern_spans.order_flow(tracer_provider_factory, fail_payment=True)
    doc = get_json(client, "/api/v1/graph?window=15m")
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert {"gateway", "orders", "payment", "inventory", "notifications"} <= set(nodes)
    assert nodes["sqlite:orders.db"]["kind"] == "database"
    assert nodes["outbox"]["kind"] == "queue"
    edges = {(e["parent"], e["child"]): e for e in doc["edges"]}
    assert edges[("gateway", "orders")]["mode"] == "sync"
    assert edges[("gateway", "orders")]["red"]["count"] == 2, "peer.service edge counted twice"
    assert edges[("orders", "notifications")]["mode"] == "async"
    assert edges[("orders", "payment")]["red"]["error_count"] == 1
    assert edges[("orders", "payment")]["health"] == "bad"
    assert nodes["gateway"]["red"]["count"] == 2 and nodes["gateway"]["red"]["p50_ns"] > 0
    assert doc["longest_chain"][:2] == ["gateway", "orders"] and len(doc["longest_chain"]) == 3


def test_graph_page_draws_svg_with_dashed_async_edge_and_escaped_names(client, tracer_provider_factory):
    from opentelemetry.trace import SpanKind

    evil = tracer_provider_factory("<script>x</script>").get_tracer("t")
    other = tracer_provider_factory("callee").get_tracer("t")
    with evil.start_as_current_span("call", kind=SpanKind.PRODUCER):
        with other.start_as_current_span("handle", kind=SpanKind.CONSUMER):
            pass
    response = client.get("/services")
    html = response.get_data(as_text=True)
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    soup = BeautifulSoup(html, "html.parser")
    svg = soup.select_one("svg.service-graph")
    assert svg is not None
    assert {a["data-node"] for a in svg.select("a.node-link")} == {"<script>x</script>", "callee"}
    edge = svg.select_one("a.edge-link g.edge")
    assert "mode-async" in edge["class"]
    assert soup.select_one("[hx-trigger='every 5s']") is not None, "live graph does not refresh itself"


def test_graph_fragment_for_htmx_and_scrubbed_view_is_not_live(client, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    soup = get_html(client, "/services?ago=30&window=5m", **{"HX-Request": "true"})
    assert soup.find("html") is None
    assert soup.select_one("[hx-trigger='every 5s']") is None
    assert soup.select_one("svg.service-graph") is None, "spans of now shown in a window 30 minutes back"
    assert "No calls between services" in soup.get_text()


def test_node_detail_shows_operations_and_links_to_failing_traces(client, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory)
    bad = pattern_spans.order_flow(tracer_provider_factory, fail_payment=True)
    soup = get_html(client, "/services/node?name=payment", **{"HX-Request": "true"})
    assert soup.find("html") is None
    assert "POST /charge" in soup.select_one("table.operations").get_text()
    assert [a["href"] for a in soup.select("ul.failing a")] == [f"/traces/{bad}"]
    assert len(soup.select("ul.slowest a")) == 2
    doc = get_json(client, "/api/v1/services/payment")
    assert doc["red"]["count"] == 2 and doc["red"]["error_count"] == 1
    assert doc["failing_traces"] == [bad] and sum(p["requests"] for p in doc["series"]) == 2


def test_edge_detail_lists_the_traces_that_used_it(client, tracer_provider_factory):
    first = pattern_spans.order_flow(tracer_provider_factory)
    pattern_spans.saga(tracer_provider_factory, "unrelated", ["a"], None)
    soup = get_html(client, "/services/edge?parent=orders&child=payment")
    assert [a["href"] for a in soup.select("ul.edge-traces a")] == [f"/traces/{first}"]
    soup = get_html(client, "/services/edge?parent=orders&child=sqlite:orders.db")
    assert [a["href"] for a in soup.select("ul.edge-traces a")] == [f"/traces/{first}"]


def test_unknown_node_and_edge_are_404_and_bad_window_is_400(client):
    assert client.get("/services/node?name=nobody").status_code == 404
    assert client.get("/services/edge?parent=a&child=b").status_code == 404
    response = client.get("/api/v1/graph?window=soon")
    assert response.status_code == 400
    assert "window must be a duration" in json.loads(response.get_data())["errors"][0]["msg"]
    assert client.get("/services?ago=-1").status_code == 400


# -- breakers -------------------------------------------------------------------------------------


def test_breakers_json_and_page_show_state_counts_and_transition_link(client, tracer_provider_factory):
    trace_id, span_id = pattern_spans.breaker_opens(tracer_provider_factory, failures=3, rejected=2)
    doc = get_json(client, "/api/v1/breakers")
    [b] = doc["breakers"]
    assert (b["name"], b["caller"], b["callee"], b["state"]) == ("orders->payment", "orders", "payment", "open")
    assert (b["calls"], b["failures"], b["rejected"]) == (5, 3, 2)
    assert [s["state"] for s in b["timeline"]] == ["closed", "open"]
    assert b["transitions"][0]["trace_id"] == trace_id and b["transitions"][0]["span_id"] == span_id
    soup = get_html(client, "/breakers")
    row = soup.select_one("tr.breaker")
    assert row.select_one(".state").get_text() == "open"
    assert row.select_one("a.mark")["href"] == f"/traces/{trace_id}?span={span_id}"


def test_open_breaker_puts_a_badge_on_the_graph_edge(client, tracer_provider_factory):
    pattern_spans.breaker_opens(tracer_provider_factory)
    doc = get_json(client, "/api/v1/graph")
    edge = next(e for e in doc["edges"] if (e["parent"], e["child"]) == ("orders", "payment"))
    assert edge["breaker"] == "open"
    soup = get_html(client, "/services")
    assert soup.select_one("g.breaker-badge.state-open") is not None


def test_breakers_page_without_breakers_says_so(client):
    assert "No circuit breaker in this window" in get_html(client, "/breakers").get_text()


# -- sagas ----------------------------------------------------------------------------------------


def test_saga_list_outcomes_failed_step_and_filter(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "ok-1", ["create", "pay", "ship"], None)
    pattern_spans.saga(tracer_provider_factory, "comp-1", ["create", "pay", "ship"], 1)
    doc = get_json(client, "/api/v1/sagas")
    by_id = {s["saga_id"]: s for s in doc["sagas"]}
    assert by_id["ok-1"]["outcome"] == "completed" and by_id["ok-1"]["failed_step"] is None
    assert by_id["comp-1"]["outcome"] == "compensated" and by_id["comp-1"]["failed_step"] == "pay"
    soup = get_html(client, "/sagas?outcome=compensated")
    assert [a.get_text() for a in soup.select("table.sagas td a")] == ["comp-1"]
    assert get_html(client, "/sagas?outcome=running").select("table.sagas") == []
    assert client.get("/sagas?outcome=weird").status_code == 400


def test_saga_page_draws_lanes_and_confirms_a_correct_compensation(client, tracer_provider_factory):
    trace_id = pattern_spans.saga(tracer_provider_factory, "s-ok", ["create", "pay", "ship"], 2)
    soup = get_html(client, "/sagas/s-ok")
    assert [d.get_text() for d in soup.select(".lane:not(.axis) .lane-name")] == ["0. create", "1. pay", "2. ship"]
    bars = soup.select("a.bar")
    assert len(bars) == 5 and len(soup.select("a.bar.phase-compensation")) == 2
    assert all(b["href"].startswith(f"/traces/{trace_id}?span=") for b in bars)
    assert soup.select_one(".failure-point") is not None
    verdict = soup.select_one(".verdict")
    assert "violated" not in verdict["class"] and "compensated, in reverse order" in verdict.get_text()


def test_saga_whose_root_span_has_not_arrived_says_so(client, tracer_provider_factory):
    provider = tracer_provider_factory("orders")
    tracer = provider.get_tracer("spyglass-tests")
    base = {"saga.name": "order", "saga.id": "s-rootless"}
    root = tracer.start_span("saga order", attributes=base)  # never ended, so never exported
    context = trace.set_span_in_context(root)
    for i, step in enumerate(["create", "pay"]):
        attributes = {**base, "saga.step": step, "saga.step.index": i, "saga.phase": "action"}
        tracer.start_span(step, context=context, attributes=attributes).end()
    provider.force_flush()
    soup = get_html(client, "/sagas/s-rootless")
    assert soup.select_one(".outcome").get_text() == "running"
    assert "root span has not arrived" in soup.select_one(".root-missing").get_text()
    pattern_spans.saga(tracer_provider_factory, "s-whole", ["create"], None)
    assert get_html(client, "/sagas/s-whole").select_one(".root-missing") is None


def test_saga_page_shows_a_violation_in_red_with_its_spans(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "s-bad", ["create", "pay", "ship"], 2, compensations=["create", "pay"])
    soup = get_html(client, "/sagas/s-bad")
    verdict = soup.select_one(".verdict.violated")
    assert verdict is not None
    [v] = verdict.select("li.violation")
    assert v["data-rule"] == "order" and len(v.select("a")) == 2
    doc = get_json(client, "/api/v1/sagas/s-bad")
    assert doc["check"]["ok"] is False and doc["check"]["violations"][0]["rule"] == "order"


def test_unknown_saga_is_404_in_page_and_json(client):
    assert "No saga" in get_html(client, "/sagas/nope", status=404).get_text()
    assert get_json(client, "/api/v1/sagas/nope", status=404)["errors"][0]["code"] == 404


# -- registry -------------------------------------------------------------------------------------


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    """The demo registry as a real process on a free port, with three instances registered:
    inventory-1 (nothing answers at its address, so the registry's health check marks it
    unhealthy), inventory-2 and orders-1 (their address answers /health: the registry's own)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SPYGLASS_DEMO_PORT": str(port),
        "SPYGLASS_DEMO_DATA_DIR": str(tmp_path / "registry"),
        "SPYGLASS_DEMO_HEARTBEAT_S": "0.2",
        "SPYGLASS_DEMO_REGISTRY_TTL_S": "600",
    }
    with (tmp_path / "registry.log").open("w") as log:
        proc = start_process(
            [sys.executable, "-m", "demo_services.registry"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_until(lambda: _answers(f"{url}/health"), timeout=30, message="the registry to answer /health")
            for service, instance_id, address, depends_on in [
                ("inventory", "inventory-1", f"http://127.0.0.1:{free_port()}", []),
                ("inventory", "inventory-2", url, []),
                ("orders", "orders-1", url, ["payment", "inventory", "users"]),
            ]:
                registration = {"service": service, "instance_id": instance_id, "url": address, "depends_on": depends_on}
                assert requests.post(f"{url}/register", json=registration, timeout=5).status_code == 201

            def checked() -> bool:
                listed = requests.get(f"{url}/instances", timeout=5).json()["instances"]
                return {i["instance_id"]: i["healthy"] for i in listed} == {
                    "inventory-1": False,
                    "inventory-2": True,
                    "orders-1": True,
                }

            wait_until(checked, message="the registry to health-check its instances")
            yield url
        finally:
            stop_process(proc)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_registry_shows_failover_and_topology_differences(settings, store, registry_url, tracer_provider_factory):
    pattern_spans.order_flow(tracer_provider_factory, inventory_instance="inventory-2")
    client = create_app(settings.replace(registry_url=registry_url), store=store).test_client()
    doc = get_json(client, "/api/v1/registry")
    assert doc["registry_error"] is None
    traffic = {i["instance_id"]: i["request_count"] for i in doc["instances"]}
    assert traffic == {"inventory-1": 0, "inventory-2": 1, "orders-1": 0}
    assert ["orders", "users"] in doc["unseen"]
    assert ["gateway", "orders"] in doc["undeclared"] and ["orders", "payment"] not in doc["undeclared"]
    soup = get_html(client, "/registry/instances")
    assert len(soup.select("tr.instance.has-traffic")) == 1
    assert "never seen in traces" in soup.select_one("ul.declared").get_text()
    # The registry sends heartbeats as seconds since the epoch; the page shows them as UTC times.
    heartbeats = [row.select("td")[4].get_text() for row in soup.select("tr.instance")]
    times = [datetime.strptime(h, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC) for h in heartbeats]
    assert len(times) == 3 and all(abs(datetime.now(UTC) - t) < timedelta(minutes=5) for t in times), heartbeats


def test_registry_unreachable_is_said_plainly(settings, store):
    client = create_app(settings.replace(registry_url="http://127.0.0.1:9"), store=store).test_client()
    soup = get_html(client, "/registry/instances")
    assert "unreachable" in soup.select_one(".registry-down").get_text()
    assert get_json(client, "/api/v1/registry")["registry_error"].startswith("the registry at")


@pytest.mark.parametrize("producer_first", [True, False])
def test_an_async_edge_page_lists_the_consumer_traces(client, store, producer_first):
    from collectors.model import KIND_CONSUMER, KIND_PRODUCER, Resource, Span, SpanLink

    now = time.time_ns()
    producer = Span(
        "a1" * 16, "b1" * 8, "", "publish OrderPlaced", KIND_PRODUCER, now, now + 1_000_000, Resource("orders")
    )
    consumers = [
        Span(
            f"c{i}" * 16,
            "d1" * 8,
            "",
            "process OrderPlaced",
            KIND_CONSUMER,
            now + 2_000_000,
            now + 5_000_000,
            Resource("notifications"),
            links=(SpanLink(producer.trace_id, producer.span_id),),
        )
        for i in range(2)
    ]
    for batch in ([producer], consumers) if producer_first else (consumers, [producer]):
        store.write_spans(batch)
    soup = get_html(client, "/services/edge?parent=orders&child=notifications")
    listed = {a["href"] for a in soup.select("ul.edge-traces a")}
    assert listed == {f"/traces/{c.trace_id}" for c in consumers}


def test_a_registry_lookup_is_drawn_as_its_own_kind_of_edge(client, tracer_provider_factory):
    pattern_spans.discovery_failover(tracer_provider_factory)
    doc = get_json(client, "/api/v1/graph?window=15m")
    modes = {(e["parent"], e["child"]): e["mode"] for e in doc["edges"]}
    assert modes[("orders", "registry")] == "lookup" and modes[("orders", "inventory")] == "sync"
    soup = get_html(client, "/services?window=15m")
    edge = soup.select_one("a.edge-link[data-parent='orders'][data-child='registry'] g.edge")
    assert "mode-lookup" in edge["class"]
    assert soup.select_one("path.line.lookup[data-parent='orders'][data-child='registry']") is not None
    assert "dotted: a lookup in the service registry" in soup.select_one("section.graph-legend").get_text()
