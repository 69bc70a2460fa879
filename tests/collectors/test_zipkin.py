"""Zipkin v2 JSON at POST /api/v2/spans: read back through the Jaeger API, refused like OTLP.

Spans go over real HTTP to the app on a loopback port (both backends) and, for the OTLP
port's routing, to a real `spyglass serve`; OpenTelemetry's own Zipkin exporter is one of
the clients.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import requests

from app.factory import create_app
from tests.helpers import ServeProcess, tags_of

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "zipkin" / "brave-frontend-backend.json"
JSON_HEADERS = {"Content-Type": "application/json"}
TRACE = "000000000000000086154a4ba6e91385"


def _post(base: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(f"{base}/api/v2/spans", data=body, headers={**JSON_HEADERS, **headers}, timeout=30)


def _trace(base: str, trace_id: str, **headers: str) -> dict:
    answer = requests.get(f"{base}/api/traces/{trace_id}", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    (trace,) = answer.json()["data"]
    return trace


def _by_name(trace: dict) -> dict[str, dict]:
    return {span["operationName"]: span for span in trace["spans"]}


def _service(trace: dict, span: dict) -> str:
    return trace["processes"][span["processID"]]["serviceName"]


def test_the_brave_fixture_reads_back_through_the_jaeger_api(live_server):
    answer = _post(live_server, FIXTURE.read_bytes())
    assert answer.status_code == 202, answer.text
    # The 64-bit trace id is found by its 16 digits and by its 32-digit form.
    trace = _trace(live_server, TRACE[16:])
    assert trace["traceID"] == TRACE
    assert _trace(live_server, TRACE)["traceID"] == TRACE
    spans = _by_name(trace)
    assert sorted(spans) == ["check-stock", "get", "get /", "get /api"]
    root, client, server, local = spans["get /"], spans["get"], spans["get /api"], spans["check-stock"]
    assert [_service(trace, s) for s in (root, client, server, local)] == ["frontend", "frontend", "backend", "backend"]
    assert root["spanID"] == "86154a4ba6e91385" and root["references"] == []
    assert root["startTime"] == 1472470996199000 and root["duration"] == 207000

    # The client keeps the id; the shared server half gets its own, under the client, and
    # the local span sent under the shared id goes under the server half.
    assert client["spanID"] == "4d1e00c0db9010db"
    assert server["spanID"] not in ("4d1e00c0db9010db", root["spanID"], local["spanID"])
    assert [r["spanID"] for r in server["references"]] == ["4d1e00c0db9010db"]
    assert [r["spanID"] for r in local["references"]] == [server["spanID"]]

    client_tags, server_tags, local_tags = tags_of(client), tags_of(server), tags_of(local)
    assert client_tags["span.kind"] == ("string", "client")
    assert server_tags["span.kind"] == ("string", "server")
    assert local_tags["span.kind"] == ("string", "internal")
    assert client_tags["peer.service"] == ("string", "backend")
    assert client_tags["network.peer.address"] == ("string", "172.17.0.9")
    assert client_tags["network.peer.port"][1] == 9000
    assert client_tags["http.path"] == ("string", "/api")
    # The error tag is the status: error=true, its text the status message.
    assert client_tags["error"] == ("bool", True)
    assert server_tags["error"] == ("bool", True)
    assert server_tags["otel.status_description"][1].endswith("IllegalStateException: stock service down")
    assert "error" not in tags_of(root)
    # Annotations are logs at their own times.
    assert [(log["timestamp"], log["fields"][0]["value"]) for log in client["logs"]] == [
        (1472470996250000, "ws"),
        (1472470996390000, "wr"),
    ]
    assert local["logs"][0]["fields"][0]["value"] == "stock service did not answer"

    # Sent again, nothing is doubled: the shared half gets the same id again.
    assert _post(live_server, FIXTURE.read_bytes()).status_code == 202
    again = _trace(live_server, TRACE)
    assert sorted(s["spanID"] for s in again["spans"]) == sorted(s["spanID"] for s in trace["spans"])


def test_opentelemetry_s_zipkin_exporter_reads_back_as_it_was_made(live_server):
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=f"{live_server}/api/v2/spans")))
    tracer = provider.get_tracer("shop.checkout", "2.1.0")
    try:
        with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as parent:
            parent.set_attribute("http.request.method", "POST")
            with tracer.start_as_current_span("charge card", kind=SpanKind.CLIENT) as child:
                child.set_attribute("retry.attempt", 2)
                child.add_event("card.declined", {"card.last4": "0002", "amount": 12.5})
                child.set_status(Status(StatusCode.ERROR, "card <declined>"))
            parent.set_status(Status(StatusCode.OK))
        trace_id = format(parent.get_span_context().trace_id, "032x")
    finally:
        provider.shutdown()

    trace = _trace(live_server, trace_id)
    spans = _by_name(trace)
    server, client = spans["POST /checkout"], spans["charge card"]
    assert server["spanID"] == format(parent.get_span_context().span_id, "016x")
    assert [r["spanID"] for r in client["references"]] == [server["spanID"]]
    assert _service(trace, server) == "checkout"
    server_tags, client_tags = tags_of(server), tags_of(client)
    assert server_tags["span.kind"] == ("string", "server")
    assert server_tags["http.request.method"] == ("string", "POST")
    assert "error" not in server_tags
    assert server_tags["otel.status_code"] == ("string", "OK")  # status OK, as the Jaeger API shows it
    assert client_tags["error"] == ("bool", True)
    assert client_tags["otel.status_description"] == ("string", "card <declined>")
    assert client_tags["retry.attempt"][1] == "2"  # Zipkin tags are text
    assert client_tags["otel.scope.name"] == ("string", "shop.checkout")
    assert client_tags["otel.scope.version"] == ("string", "2.1.0")
    assert "service.name" not in client_tags
    (log,) = client["logs"]
    fields = {f["key"]: f["value"] for f in log["fields"]}
    assert fields["event"] == "card.declined"
    assert fields["card.last4"] == "0002" and fields["amount"] == 12.5


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"[{", "body is not valid JSON"),
        (b'{"spans": []}', "body must be a JSON array of Zipkin v2 spans"),
        (b"[1]", "spans[0]: expected a span object"),
        (b'[{"id": "a1", "timestamp": 1}]', "spans[0].traceId: expected up to 32 hex digits"),
        (b'[{"traceId": "xyz", "id": "a1", "timestamp": 1}]', "spans[0].traceId: expected up to 32 hex digits"),
        (b'[{"traceId": "0000", "id": "a1", "timestamp": 1}]', "spans[0].traceId: must not be all zeros"),
        (b'[{"traceId": "a1", "id": "12345678901234567", "timestamp": 1}]', "spans[0].id: expected up to 16"),
        (b'[{"traceId": "a1", "id": "b2"}]', "spans[0].timestamp: missing"),
        (b'[{"traceId": "a1", "id": "b2", "timestamp": "soon"}]', "spans[0].timestamp: expected a whole number"),
        (b'[{"traceId": "a1", "id": "b2", "timestamp": 1, "duration": -5}]', "spans[0].duration: expected a whole"),
        (b'[{"traceId": "a1", "id": "b2", "timestamp": 1, "kind": "SIDEWAYS"}]', "spans[0].kind: expected CLIENT"),
        (b'[{"traceId": "a1", "id": "b2", "timestamp": 1, "tags": {"n": 5}}]', "spans[0].tags.n: expected a string"),
        (b'[{"traceId": "a1", "id": "b2", "timestamp": 1, "tags": []}]', "spans[0].tags: expected an object"),
        (
            b'[{"traceId": "a1", "id": "b2", "timestamp": 1, "localEndpoint": {"port": 70000}}]',
            "spans[0].localEndpoint.port: expected a port number",
        ),
        (b'[{"traceId": "a1", "id": "b2", "timestamp": 1, "annotations": [{}]}]', "spans[0].annotations[0]"),
        (b'[{"traceId": "a1", "id": "b2", "timestamp": 9223372036854775807}]', "spans[0].timestamp"),
    ],
)
def test_bad_input_is_a_400_with_a_message_and_nothing_is_stored(client, body, fragment):
    answer = client.post("/api/v2/spans", data=body, headers=JSON_HEADERS)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    status = answer.get_json()
    assert status["code"] == 3 and fragment in status["message"]
    assert client.get("/api/services").get_json()["data"] == []


def test_wrong_content_type_empty_body_and_size_limits_as_for_otlp(client, app):
    answer = client.post("/api/v2/spans", data=b"\x0a\x00", headers={"Content-Type": "application/x-protobuf"})
    assert answer.status_code == 415 and "Zipkin v2 JSON" in answer.get_json()["message"]
    assert client.post("/api/v2/spans", data=b"", headers=JSON_HEADERS).status_code == 400
    limit = app.extensions["spyglass.receiver"].max_body_bytes
    big = b"[" + b" " * limit + b"]"
    assert client.post("/api/v2/spans", data=big, headers=JSON_HEADERS).status_code == 413
    bomb = gzip.compress(big)
    answer = client.post("/api/v2/spans", data=bomb, headers={**JSON_HEADERS, "Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "decompressed" in answer.get_json()["message"]
    gzipped = gzip.compress(FIXTURE.read_bytes())
    answer = client.post("/api/v2/spans", data=gzipped, headers={**JSON_HEADERS, "Content-Encoding": "gzip"})
    assert answer.status_code == 202
    assert sorted(client.get("/api/services").get_json()["data"]) == ["backend", "frontend"]


def test_limits_cut_tags_and_annotations_and_count_them(client, settings, store):
    app = create_app(settings.replace(max_attributes=2, max_events=1, max_value_length=5), store=store)
    span = {
        "traceId": "a1",
        "id": "b2",
        "name": "a long name",
        "timestamp": 1_700_000_000_000_000,
        "duration": 10,
        "localEndpoint": {"serviceName": "svc"},
        "tags": {"a": "1", "b": "2", "c": "3"},
        "annotations": [{"timestamp": 1_700_000_000_000_001, "value": "one"}, {"value": "two"}],
    }
    answer = app.test_client().post("/api/v2/spans", data=json.dumps([span]), headers=JSON_HEADERS)
    assert answer.status_code == 202
    (jaeger_span,) = client.get(f"/api/traces/{'a1'.zfill(32)}").get_json()["data"][0]["spans"]
    assert jaeger_span["operationName"] == "a lon"
    assert len(jaeger_span["logs"]) == 1


def test_a_token_is_needed_when_one_is_set_and_overload_is_a_503(settings, store):
    app = create_app(settings.replace(auth_token="zipkin-token", max_inflight=1), store=store)
    client = app.test_client()
    answer = client.post("/api/v2/spans", data=FIXTURE.read_bytes(), headers=JSON_HEADERS)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.get_json()["code"] == 16
    authorized = {**JSON_HEADERS, "Authorization": "Bearer zipkin-token"}
    inflight = app.extensions["spyglass.receiver"].inflight
    inflight.acquire()
    try:
        answer = client.post("/api/v2/spans", data=FIXTURE.read_bytes(), headers=authorized)
    finally:
        inflight.release()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert client.post("/api/v2/spans", data=FIXTURE.read_bytes(), headers=authorized).status_code == 202


def test_spyglass_serve_takes_zipkin_on_its_otlp_port(tmp_path):
    server = ServeProcess(tmp_path / "data")
    try:
        answer = _post(server.otlp, FIXTURE.read_bytes())
        assert answer.status_code == 202, answer.text
        trace = _trace(server.ui, TRACE)
        assert len(trace["spans"]) == 4
        # The UI port takes it too, as it takes OTLP; other paths stay closed on the OTLP port.
        assert requests.get(f"{server.otlp}/api/traces/{TRACE}", timeout=10).status_code == 404
    finally:
        server.stop()

