"""Auth and security headers on a real `spyglass serve` (gunicorn, both ports, gRPC enabled).

Every response carries the Content-Security-Policy, nosniff and Referrer-Policy headers and
no server version: pages, fragments, the JSON API, errors, static files and the OTLP port.
With SPYGLASS_AUTH_TOKEN set, both OTLP receivers and the dashboard take only the token.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers import ServeProcess, free_port, pb_request

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    grpc_port = free_port()
    data = tmp_path_factory.mktemp("security") / "data"
    serve = ServeProcess(
        data,
        "--otlp-grpc-enabled",
        "--otlp-grpc-addr",
        f"127.0.0.1:{grpc_port}",
        env={"SPYGLASS_AUTH_TOKEN": TOKEN},
    )
    serve.grpc_addr = f"127.0.0.1:{grpc_port}"
    try:
        yield serve
    finally:
        serve.stop()


def _batch(trace_id: str) -> bytes:
    span = {"trace_id": trace_id, "span_id": "cd" * 8, "name": "op", "start": 1_000, "end": 2_000}
    return pb_request([{"service": "svc", "spans": [span]}]).SerializeToString()


def _assert_secured(response: requests.Response) -> None:
    where = f"{response.request.method} {response.url} -> {response.status_code}"
    csp = response.headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("script-src") == ["'self'"], where
    assert directives.get("frame-ancestors") == ["'none'"], where
    assert directives.get("object-src") == ["'none'"], where
    assert "'unsafe-inline'" not in directives.get("style-src", []), where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") == "same-origin", where
    assert response.headers.get("X-Frame-Options") == "DENY", where
    server_header = response.headers.get("Server", "")
    assert not re.search(r"\d|gunicorn|werkzeug|python", server_header, re.I), (where, server_header)


def test_every_kind_of_response_carries_the_security_headers(server: ServeProcess) -> None:
    ui, otlp = server.ui, server.otlp
    responses = [
        requests.get(ui + "/", headers=AUTH),  # page
        requests.get(ui + "/traces", headers={**AUTH, "HX-Request": "true"}),  # fragment
        requests.get(ui + "/api/services", headers=AUTH),  # JSON API
        requests.get(ui + "/api/traces/" + "ef" * 16, headers=AUTH),  # JSON error
        requests.get(ui + "/no/such/page", headers=AUTH),  # error page
        requests.get(ui + "/traces?limit=x", headers=AUTH),  # bad input
        requests.get(ui + "/"),  # 401 page
        requests.get(ui + "/api/services"),  # 401 JSON
        requests.get(ui + f"/?token={TOKEN}", allow_redirects=False),  # login redirect
        requests.get(ui + "/static/app.css"),  # static
        requests.get(ui + "/static/guard.js"),
        requests.get(ui + "/health"),
        requests.get(otlp + "/health"),
        requests.get(otlp + "/anything"),  # the OTLP port's own 404
        requests.post(otlp + "/v1/traces", data=_batch("a1" * 16), headers={**PB, **AUTH}),  # accepted
        requests.post(otlp + "/v1/traces", data=_batch("a2" * 16), headers=PB),  # refused
        requests.post(otlp + "/v1/traces", data=b"not protobuf", headers={**PB, **AUTH}),  # malformed
    ]
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 404, 404, 400, 401, 401, 303, 200, 200, 200, 200, 404, 200, 401, 400]
    for response in responses:
        _assert_secured(response)
    assert responses[10].headers["Content-Type"].startswith("text/javascript")


def test_a_401_challenges_for_a_bearer_token_in_any_case_of_the_scheme(server: ServeProcess) -> None:
    for url in (server.ui + "/api/services", server.ui + "/traces"):
        refused = requests.get(url)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert requests.get(url, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
        assert requests.get(url, headers={"Authorization": TOKEN}).status_code == 401
    for value, status in ((TOKEN, 401), (f"Bearer {TOKEN}x", 401), (f"bEaReR {TOKEN}", 200)):
        r = requests.post(server.otlp + "/v1/traces", data=_batch("a3" * 16), headers={**PB, "Authorization": value})
        assert r.status_code == status, value
    assert requests.get(server.ui + "/api/traces/" + "a3" * 16, headers=AUTH).status_code == 200


def test_token_in_the_address_becomes_a_cookie_and_leaves_the_url(server: ServeProcess) -> None:
    session = requests.Session()
    r = session.get(server.ui + f"/traces?service=svc&token={TOKEN}", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/traces?service=svc"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = session.get(server.ui + r.headers["Location"])
    assert page.status_code == 200 and TOKEN not in page.text
    # Behind a TLS-terminating proxy on this host (gunicorn trusts X-Forwarded-Proto from
    # loopback only), the cookie is Secure.
    proxied = requests.get(
        server.ui + f"/?token={TOKEN}", headers={"X-Forwarded-Proto": "https"}, allow_redirects=False
    )
    assert proxied.status_code == 303 and "Secure" in proxied.headers["Set-Cookie"]


def test_login_redirect_stays_on_the_site_for_any_request_line(server: ServeProcess) -> None:
    cases = ((f"//evil.example/x?token={TOKEN}", "/evil.example/x"), (f"/sagas/..%2Fx?token={TOKEN}", "/sagas/..%2Fx"))
    for target, expected in cases:
        with socket.create_connection(("127.0.0.1", server.ui_port), timeout=5) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        assert head.startswith("HTTP/1.1 303"), head
        assert f"\r\nLocation: {expected}\r\n" in head, head


def _grpc_export(server: ServeProcess, headers: dict[str, str] | None, name: str) -> tuple[SpanExportResult, str]:
    """Export one span with the real OTel gRPC exporter; returns its result and trace id."""
    finished = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-auth"}))
    provider.add_span_processor(SimpleSpanProcessor(finished))
    with provider.get_tracer("t").start_as_current_span(name) as span:
        trace_id = f"{span.get_span_context().trace_id:032x}"
    provider.shutdown()
    exporter = GrpcExporter(endpoint=server.grpc_addr, insecure=True, headers=headers, timeout=5)
    try:
        return exporter.export(finished.get_finished_spans()), trace_id
    finally:
        exporter.shutdown()


def test_grpc_receiver_stores_only_what_carries_the_token(server: ServeProcess) -> None:
    refused = [
        _grpc_export(server, None, "no-token"),
        _grpc_export(server, {"authorization": "Bearer wrong"}, "wrong-token"),
        _grpc_export(server, {"authorization": TOKEN}, "no-scheme"),
    ]
    accepted = _grpc_export(server, {"authorization": f"bearer {TOKEN}"}, "right-token")
    assert [result for result, _ in refused] == [SpanExportResult.FAILURE] * 3
    assert accepted[0] == SpanExportResult.SUCCESS
    for _, trace_id in refused:
        assert requests.get(f"{server.ui}/api/traces/{trace_id}", headers=AUTH).status_code == 404
    stored = requests.get(f"{server.ui}/api/traces/{accepted[1]}", headers=AUTH).json()
    assert stored["data"][0]["spans"][0]["operationName"] == "right-token"


def test_grpc_refusal_is_unauthenticated(server: ServeProcess) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(_batch("a4" * 16))
    with grpc.insecure_channel(server.grpc_addr) as channel:
        export = trace_service_pb2_grpc.TraceServiceStub(channel).Export
        for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as refused:
                export(request, metadata=metadata, timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "bearer token" in refused.value.details()
        export(request, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=5)
    assert requests.get(f"{server.ui}/api/traces/{'a4' * 16}", headers=AUTH).status_code == 200
