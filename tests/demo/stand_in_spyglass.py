"""A minimal in-memory stand-in for ``spyglass serve``, used by the demo tests until the
real collector is part of this branch.

It implements only the contract the demo tests read: OTLP/HTTP protobuf on
``/v1/traces``, ``GET /health``, and the Jaeger-style ``/api/services``, ``/api/traces``,
``/api/traces/<id>`` and ``/api/dependencies`` on the UI port. Run as
``python -m tests.demo.stand_in_spyglass serve --ui-addr A --otlp-http-addr B --data-dir D``.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from flask import Flask, Response, jsonify, request
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from werkzeug.serving import make_server

_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_spans: list[dict[str, Any]] = []
_lock = threading.Lock()


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _tags(attributes: Any) -> list[dict[str, Any]]:
    tags = []
    for kv in attributes:
        value = _value(kv.value)
        kind = (
            "bool"
            if isinstance(value, bool)
            else (
                "int64"
                if isinstance(value, int)
                else "float64"
                if isinstance(value, float)
                else "string"
            )
        )
        tags.append({"key": kv.key, "type": kind, "value": value})
    return tags


def otlp_app() -> Flask:
    """Return the OTLP receiver app."""
    app = Flask("otlp")

    @app.post("/v1/traces")
    def receive() -> Response:
        body = ExportTraceServiceRequest()
        try:
            body.ParseFromString(request.get_data())
        except DecodeError:
            return Response("bad protobuf", status=400)
        rows = []
        for rs in body.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    tags = _tags(s.attributes)
                    tags.append(
                        {
                            "key": "span.kind",
                            "type": "string",
                            "value": _KINDS.get(s.kind, "unspecified"),
                        }
                    )
                    if s.status.code == 2:
                        tags.append({"key": "error", "type": "bool", "value": True})
                    refs = []
                    if s.parent_span_id:
                        refs.append(
                            {
                                "refType": "CHILD_OF",
                                "traceID": s.trace_id.hex(),
                                "spanID": s.parent_span_id.hex(),
                            }
                        )
                    refs += [
                        {
                            "refType": "FOLLOWS_FROM",
                            "traceID": link.trace_id.hex(),
                            "spanID": link.span_id.hex(),
                        }
                        for link in s.links
                    ]
                    rows.append(
                        {
                            "traceID": s.trace_id.hex(),
                            "spanID": s.span_id.hex(),
                            "operationName": s.name,
                            "references": refs,
                            "startTime": s.start_time_unix_nano // 1000,
                            "duration": (s.end_time_unix_nano - s.start_time_unix_nano) // 1000,
                            "tags": tags,
                            "logs": [
                                {
                                    "timestamp": e.time_unix_nano // 1000,
                                    "fields": [
                                        {"key": "event", "type": "string", "value": e.name},
                                        *_tags(e.attributes),
                                    ],
                                }
                                for e in s.events
                            ],
                            "_service": resource.get("service.name", "unknown"),
                            "_resource": resource,
                        }
                    )
        with _lock:
            _spans.extend(rows)
        return Response(
            ExportTraceServiceResponse().SerializeToString(), mimetype="application/x-protobuf"
        )

    return app


def _trace(trace_id: str) -> dict[str, Any] | None:
    with _lock:
        spans = [dict(s) for s in _spans if s["traceID"] == trace_id]
    if not spans:
        return None
    processes: dict[str, dict[str, Any]] = {}
    keys: dict[tuple, str] = {}
    for span in spans:
        resource = span.pop("_resource")
        service = span.pop("_service")
        key = (service, json.dumps(resource, sort_keys=True))
        if key not in keys:
            keys[key] = f"p{len(keys) + 1}"
            processes[keys[key]] = {
                "serviceName": service,
                "tags": [{"key": k, "type": "string", "value": v} for k, v in resource.items()],
            }
        span["processID"] = keys[key]
    return {"traceID": trace_id, "spans": spans, "processes": processes}


def ui_app() -> Flask:
    """Return the query API app."""
    app = Flask("ui")

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @app.get("/api/services")
    def services() -> Response:
        with _lock:
            names = sorted({s["_service"] for s in _spans})
        return jsonify(data=names, total=len(names))

    @app.get("/api/traces/<trace_id>")
    def get_trace(trace_id: str) -> tuple[Response, int] | Response:
        found = _trace(trace_id)
        if found is None:
            return jsonify(errors=[{"code": 404, "msg": "trace not found"}]), 404
        return jsonify(data=[found])

    @app.get("/api/traces")
    def find_traces() -> Response:
        service = request.args.get("service")
        operation = request.args.get("operation")
        tags = json.loads(request.args.get("tags") or "{}")
        limit = int(request.args.get("limit") or 20)
        with _lock:
            spans = list(_spans)
        ids: list[str] = []
        for span in reversed(spans):
            if service and span["_service"] != service:
                continue
            if operation and span["operationName"] != operation:
                continue
            values = {t["key"]: t["value"] for t in span["tags"]}
            if any(str(values.get(k)).lower() != str(v).lower() for k, v in tags.items()):
                continue
            if span["traceID"] not in ids:
                ids.append(span["traceID"])
            if len(ids) >= limit:
                break
        return jsonify(data=[t for t in (_trace(i) for i in ids) if t])

    @app.get("/api/dependencies")
    def dependencies() -> Response:
        with _lock:
            spans = list(_spans)
        by_id = {(s["traceID"], s["spanID"]): s for s in spans}
        counts: dict[tuple[str, str], int] = {}
        for span in spans:
            kind = next((t["value"] for t in span["tags"] if t["key"] == "span.kind"), "")
            parent_ref = next((r for r in span["references"] if r["refType"] == "CHILD_OF"), None)
            if kind != "server" or parent_ref is None:
                continue
            parent = by_id.get((parent_ref["traceID"], parent_ref["spanID"]))
            if parent is None or parent["_service"] == span["_service"]:
                continue
            edge = (parent["_service"], span["_service"])
            counts[edge] = counts.get(edge, 0) + 1
        return jsonify(
            data=[{"parent": p, "child": c, "callCount": n} for (p, c), n in sorted(counts.items())]
        )

    return app


def main() -> None:
    """Serve both ports until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--ui-addr", required=True)
    parser.add_argument("--otlp-http-addr", required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    servers = []
    for addr, app in ((args.otlp_http_addr, otlp_app()), (args.ui_addr, ui_app())):
        host, port = addr.rsplit(":", 1)
        servers.append(make_server(host, int(port), app, threaded=True))
    threading.Thread(target=servers[0].serve_forever, daemon=True).start()
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=servers[1].shutdown, daemon=True).start()
    )
    servers[1].serve_forever()


if __name__ == "__main__":
    main()
