"""End to end: the real OpenTelemetry SDK -> a real `spyglass serve` process -> the Jaeger API.

A multi-service trace (client span in one service parenting a server span in another,
an error span with an exception event, a span link, attributes of every type the SDK
allows) is read back through /api/traces/{id} and compared field by field with what the
SDK recorded. The same trace is then sent as hand-written OTLP/JSON (under another trace
id) and must read back identically.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
import requests
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.helpers import ServeProcess, json_request, pb_request, tags_of, wait_until

KIND_NAMES = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = ServeProcess(tmp_path_factory.mktemp("serve") / "data")
    yield proc
    proc.stop()


def _provider(service: str, endpoint: str, memory: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "host.name": "box-1", "deployment.environment": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider


def _record_trace(endpoint: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    frontend = _provider("frontend", endpoint, memory)
    backend = _provider("backend", endpoint, memory)
    ft, bt = frontend.get_tracer("shop.web", "2.1"), backend.get_tracer("shop.api", "0.9")
    with ft.start_as_current_span("warmup") as other:
        other_ctx = other.get_span_context()
    with ft.start_as_current_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "ratio": 0.25,
            "cached": False,
            "tags": ["a", "b"],
            "codes": [1, 2, 3],
            "weights": [0.5, 1.5],
            "flags": [True, False],
        },
    ) as root:
        root.add_event("cart.loaded", {"items": 3})
        with ft.start_as_current_span(
            "POST backend /pay", kind=SpanKind.CLIENT, links=[Link(other_ctx, {"link.reason": "warmup"})]
        ) as client:
            ctx = trace_api.set_span_in_context(client)
            with bt.start_as_current_span("pay", context=ctx, kind=SpanKind.SERVER) as srv:
                srv.set_attribute("payment.amount", 1999)
                try:
                    raise ValueError("card <declined>")
                except ValueError as err:
                    srv.record_exception(err)
                    srv.set_status(Status(StatusCode.ERROR, "card declined"))
    frontend.shutdown()
    backend.shutdown()
    return list(memory.get_finished_spans())


def _fetch(server: ServeProcess, trace_id: str) -> dict:
    def get():
        r = requests.get(f"{server.ui}/api/traces/{trace_id}", timeout=5)
        return r.json() if r.status_code == 200 else None

    doc = wait_until(get, message="trace to be readable")
    assert doc["errors"] is None
    return doc["data"][0]


def _compare(sdk_spans: list[ReadableSpan], jtrace: dict) -> None:
    by_id = {s["spanID"]: s for s in jtrace["spans"]}
    assert len(by_id) == len(sdk_spans)
    for s in sdk_spans:
        ctx = s.get_span_context()
        j = by_id[f"{ctx.span_id:016x}"]
        assert j["traceID"] == f"{ctx.trace_id:032x}"
        assert j["operationName"] == s.name
        assert j["startTime"] == s.start_time // 1000
        assert j["duration"] == (s.end_time - s.start_time) // 1000
        refs = [(r["refType"], r["traceID"], r["spanID"]) for r in j["references"]]
        expected = []
        if s.parent is not None:
            expected.append(("CHILD_OF", f"{s.parent.trace_id:032x}", f"{s.parent.span_id:016x}"))
        expected += [("FOLLOWS_FROM", f"{lk.context.trace_id:032x}", f"{lk.context.span_id:016x}") for lk in s.links]
        assert refs == expected
        tags = tags_of(j)
        for key, value in s.attributes.items():
            if isinstance(value, tuple):
                assert tags[key] == ("string", json.dumps(list(value)))
            elif isinstance(value, bool):
                assert tags[key] == ("bool", value)
            elif isinstance(value, int):
                assert tags[key] == ("int64", value)
            elif isinstance(value, float):
                assert tags[key] == ("float64", value)
            else:
                assert tags[key] == ("string", value)
        assert tags["span.kind"] == ("string", KIND_NAMES[s.kind])
        assert tags["otel.scope.name"] == ("string", s.instrumentation_scope.name)
        assert tags["otel.scope.version"] == ("string", s.instrumentation_scope.version)
        if s.status.status_code == StatusCode.ERROR:
            assert tags["error"] == ("bool", True)
            assert tags["otel.status_description"] == ("string", s.status.description)
        else:
            assert "error" not in tags
        assert len(j["logs"]) == len(s.events)
        for log, event in zip(j["logs"], s.events, strict=True):
            assert log["timestamp"] == event.timestamp // 1000
            fields = {f["key"]: f["value"] for f in log["fields"]}
            assert fields["event"] == event.name
            for key, value in event.attributes.items():
                assert fields[key] == value
        process = jtrace["processes"][j["processID"]]
        assert process["serviceName"] == s.resource.attributes["service.name"]
        ptags = {t["key"]: t["value"] for t in process["tags"]}
        assert ptags["host.name"] == "box-1"
        assert ptags["telemetry.sdk.language"] == "python"


def test_sdk_trace_reads_back_field_by_field(server: ServeProcess) -> None:
    spans = _record_trace(f"{server.otlp}/v1/traces")
    main = [s for s in spans if s.name != "warmup"]
    trace_id = f"{main[0].get_span_context().trace_id:032x}"
    jtrace = _fetch(server, trace_id)
    _compare(main, jtrace)
    pay = next(s for s in jtrace["spans"] if s["operationName"] == "pay")
    exc = {f["key"]: f["value"] for f in pay["logs"][0]["fields"]}
    assert exc["event"] == "exception"
    assert exc["exception.type"] == "ValueError"
    assert exc["exception.message"] == "card <declined>"
    assert "Traceback" in exc["exception.stacktrace"]
    services = {jtrace["processes"][s["processID"]]["serviceName"] for s in jtrace["spans"]}
    assert services == {"frontend", "backend"}


def test_the_same_trace_as_hand_written_otlp_json_reads_back_identically(server: ServeProcess) -> None:
    spans = _record_trace(f"{server.otlp}/v1/traces")
    trace_id = f"{spans[-1].get_span_context().trace_id:032x}"
    via_protobuf = _fetch(server, trace_id)
    # The same spans under another trace id, so the server stores them again rather than
    # taking them for an exporter's retry; the id is put back before comparing.
    json_id = uuid.uuid4().hex
    description = json.loads(json.dumps(_sdk_spans_described(spans)).replace(trace_id, json_id))
    r = requests.post(
        f"{server.otlp}/v1/traces",
        data=json_request(description),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {}
    via_json = json.loads(json.dumps(_fetch(server, json_id)).replace(json_id, trace_id))
    assert _normalised(via_json) == _normalised(via_protobuf)


def test_dependencies_and_services_reflect_the_cross_service_call(server: ServeProcess) -> None:
    spans = _record_trace(f"{server.otlp}/v1/traces")
    _fetch(server, f"{spans[-1].get_span_context().trace_id:032x}")
    deps = requests.get(f"{server.ui}/api/dependencies", timeout=5).json()["data"]
    assert {"parent": "frontend", "child": "backend"} in [{k: d[k] for k in ("parent", "child")} for d in deps]
    assert {"backend", "frontend"} <= set(requests.get(f"{server.ui}/api/services", timeout=5).json()["data"])
    ops = requests.get(f"{server.ui}/api/services/backend/operations", timeout=5).json()["data"]
    assert ops == ["pay"]


def test_every_otlp_value_type_including_kvlists_and_bytes(server: ServeProcess) -> None:
    attrs = {
        "s": "text",
        "i": -42,
        "big": 2**62,
        "d": 3.5,
        "b": True,
        "bytes": b"\x00\xffraw",
        "arr": ["x", 1, 2.5, False],
        "kv": {"inner": {"deep": [1, {"k": "v"}]}, "n": 7},
        "empty": None,
    }
    desc = [
        {
            "service": "typed",
            "spans": [
                {
                    "trace_id": "ab" * 16,
                    "span_id": "cd" * 8,
                    "name": "typed-op",
                    "start": 1_700_000_000_000_000_000,
                    "end": 1_700_000_000_500_000_000,
                    "attributes": attrs,
                }
            ],
        }
    ]
    r = requests.post(
        f"{server.otlp}/v1/traces",
        data=pb_request(desc).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=5,
    )
    assert r.status_code == 200
    tags = tags_of(_fetch(server, "ab" * 16)["spans"][0])
    assert tags["s"] == ("string", "text")
    assert tags["i"] == ("int64", -42)
    assert tags["big"] == ("int64", 2**62)
    assert tags["d"] == ("float64", 3.5)
    assert tags["b"] == ("bool", True)
    assert tags["bytes"] == ("binary", "AP9yYXc=")
    assert tags["arr"] == ("string", '["x", 1, 2.5, false]')
    assert json.loads(tags["kv"][1]) == {"inner": {"deep": [1, {"k": "v"}]}, "n": 7}
    # The same request in the JSON mapping, under another trace id, decodes to the same tags.
    desc[0]["spans"][0]["trace_id"] = "ef" * 16
    r = requests.post(
        f"{server.otlp}/v1/traces", data=json_request(desc), headers={"Content-Type": "application/json"}, timeout=5
    )
    assert r.status_code == 200
    assert tags_of(_fetch(server, "ef" * 16)["spans"][0]) == tags


def test_concurrent_senders_with_retries_store_every_span_once(tmp_path: Path) -> None:
    senders, batches, spans_per_batch = 6, 15, 40
    server = ServeProcess(tmp_path / "data", "--workers", "2")
    acknowledged: list[str] = []
    closed = []  # responses after which a worker closed the keep-alive connection
    lock = threading.Lock()

    def send(sender: int) -> None:
        session = requests.Session()
        for b in range(batches):
            trace_id = f"{sender + 1:08x}{b + 1:08x}" + "ab" * 8
            spans = [
                {
                    "trace_id": trace_id,
                    "span_id": f"{i + 1:016x}",
                    "parent": f"{i:016x}" if i else "",
                    "name": f"op-{i % 4}",
                    "start": 1_700_000_000_000_000_000 + i,
                    "end": 1_700_000_000_000_100_000 + i,
                }
                for i in range(spans_per_batch)
            ]
            body = pb_request([{"service": "concurrency", "spans": spans}]).SerializeToString()
            for _attempt in range(2 if b % 3 == 0 else 1):  # every third batch is retried, as exporters do
                r = session.post(
                    f"{server.otlp}/v1/traces",
                    data=body,
                    headers={"Content-Type": "application/x-protobuf"},
                    timeout=30,
                )
                assert r.status_code == 200, r.text
                if r.headers.get("Connection", "").lower() == "close":
                    closed.append(r)
            with lock:
                acknowledged.append(trace_id)

    try:
        threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(acknowledged) == senders * batches
        # With two workers, connections are now and then closed so that they spread over
        # both (a client reconnects transparently): 120 requests see several closes.
        assert len(closed) >= 3
        r = requests.get(
            f"{server.ui}/api/traces", params={"service": "concurrency", "start": 0, "limit": 1500}, timeout=30
        )
        traces = r.json()["data"]
        span_ids = [(t["traceID"], s["spanID"]) for t in traces for s in t["spans"]]
        assert len(traces) == senders * batches
        assert len(span_ids) == len(set(span_ids)) == senders * batches * spans_per_batch
        assert {t["traceID"] for t in traces} == set(acknowledged)
    finally:
        server.stop()


def test_gzip_and_chunked_bodies_are_read_in_full(server: ServeProcess) -> None:
    import gzip

    desc = [
        {
            "service": "chunky",
            "spans": [
                {
                    "trace_id": "12" * 16,
                    "span_id": f"{i + 1:016x}",
                    "name": "c",
                    "start": 1_700_000_000_000_000_000,
                    "end": 1_700_000_000_000_000_100,
                }
                for i in range(300)
            ],
        }
    ]
    body = gzip.compress(pb_request(desc).SerializeToString())

    def chunks():
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    r = requests.post(
        f"{server.otlp}/v1/traces",
        data=chunks(),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert len(_fetch(server, "12" * 16)["spans"]) == 300


def test_the_otlp_port_serves_only_the_receiver(server: ServeProcess) -> None:
    assert requests.get(f"{server.otlp}/api/services", timeout=5).status_code == 404
    assert requests.get(f"{server.ui}/api/services", timeout=5).status_code == 200


def _normalised(jtrace: dict) -> dict:
    """A trace with process ids replaced by service names and lists in a fixed order."""
    spans = []
    for s in sorted(jtrace["spans"], key=lambda s: s["spanID"]):
        s = dict(s)
        s["process"] = jtrace["processes"][s.pop("processID")]
        s["process"]["tags"] = sorted(s["process"]["tags"], key=lambda t: t["key"])
        spans.append(s)
    return {"traceID": jtrace["traceID"], "spans": spans}


def _sdk_spans_described(spans: list[ReadableSpan]) -> list[dict]:
    """SDK spans as the description :func:`tests.helpers.json_request` writes as OTLP/JSON."""
    groups: dict[tuple, list[ReadableSpan]] = {}
    for s in spans:
        key = (
            tuple(sorted(s.resource.attributes.items())),
            s.instrumentation_scope.name,
            s.instrumentation_scope.version,
        )
        groups.setdefault(key, []).append(s)
    return [
        {
            "service": dict(resource)["service.name"],
            "resource": {k: v for k, v in resource if k != "service.name"},
            "scope": (scope_name, scope_version),
            "spans": [_span_described(s) for s in members],
        }
        for (resource, scope_name, scope_version), members in groups.items()
    ]


def _span_described(s: ReadableSpan) -> dict:
    def attrs(mapping):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in mapping.items()}

    ctx = s.get_span_context()
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent": f"{s.parent.span_id:016x}" if s.parent is not None else None,
        "name": s.name,
        "kind": s.kind.value + 1,  # the SDK's enum starts at INTERNAL=0; OTLP's at UNSPECIFIED=0
        "start": s.start_time,
        "end": s.end_time,
        "attributes": attrs(s.attributes),
        "events": [(e.timestamp, e.name, attrs(e.attributes)) for e in s.events],
        "links": [(f"{lk.context.trace_id:032x}", f"{lk.context.span_id:016x}", attrs(lk.attributes)) for lk in s.links],
        "status": (
            {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}[s.status.status_code],
            s.status.description or "",
        ),
        # SpanFlags as the SDK's encoder sets them: "has is_remote", plus "is remote" for a remote parent.
        "flags": 0x100 | (0x200 if s.parent is not None and s.parent.is_remote else 0),
    }


def test_otlp_grpc_exporter_when_enabled(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    from tests.helpers import free_port

    port = free_port()
    server = ServeProcess(tmp_path / "data", "--otlp-grpc-enabled", "--otlp-grpc-addr", f"127.0.0.1:{port}")
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "grpc-client"}))
        provider.add_span_processor(SimpleSpanProcessor(GrpcExporter(endpoint=f"127.0.0.1:{port}", insecure=True)))
        with provider.get_tracer("t").start_as_current_span("over-grpc") as s:
            trace_id = f"{s.get_span_context().trace_id:032x}"
        provider.shutdown()
        jtrace = _fetch(server, trace_id)
        assert jtrace["spans"][0]["operationName"] == "over-grpc"
        assert jtrace["processes"]["p1"]["serviceName"] == "grpc-client"
    finally:
        server.stop()


def test_retention_caps_the_span_count_in_the_background(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", "--max-spans", "6", "--prune-interval-s", "0.3")
    try:
        trace_ids = []
        for n in range(1, 4):
            trace_id = f"{n:032x}"
            trace_ids.append(trace_id)
            spans = [
                {
                    "trace_id": trace_id,
                    "span_id": f"{i + 1:016x}",
                    "name": "kept-or-pruned",
                    "start": 1_700_000_000_000_000_000 + n,
                    "end": 1_700_000_000_000_000_100 + n,
                }
                for i in range(4)
            ]
            r = requests.post(
                f"{server.otlp}/v1/traces",
                data=pb_request([{"service": "cap", "spans": spans}]).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
                timeout=10,
            )
            assert r.status_code == 200

        def remaining() -> list[str] | None:
            r = requests.get(f"{server.ui}/api/traces", params={"service": "cap", "start": 0, "limit": 100}, timeout=5)
            ids = sorted(t["traceID"] for t in r.json()["data"])
            return ids if len(ids) <= 1 else None

        assert wait_until(remaining, timeout=20, message=f"retention to prune\n{server.output()}") == [trace_ids[-1]]
    finally:
        server.stop()


def _maintenance_pids(root: int) -> set[int]:
    """Pids of `collectors.maintenance` processes below ``root``."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == root and b"collectors.maintenance" in cmdline:
            found.add(int(proc.name))
    return found


def test_a_maintenance_process_that_dies_is_started_again(server: ServeProcess) -> None:
    import os
    import signal

    [first] = wait_until(lambda: _maintenance_pids(server.proc.pid), message="the maintenance process")
    os.kill(first, signal.SIGKILL)
    replacement = wait_until(
        lambda: _maintenance_pids(server.proc.pid) - {first},
        timeout=15,
        message=f"a new maintenance process\n{server.output()}",
    )
    assert len(replacement) == 1
