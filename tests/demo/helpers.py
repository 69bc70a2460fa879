"""Helpers for the demo tests: an in-memory tracer, failure messages, Spyglass's Jaeger API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from demo_services.launcher import Demo

NO_FAULTS = {
    "error_rate": 0.0,
    "latency_ms": 0,
    "jitter_ms": 0,
    "hang": False,
    "out_of_stock": False,
    "decline": False,
    "stopped": False,
    "bypass_breakers": False,
    "skip_compensation": False,
    "hold_at": "",
}
"""A demo service's /control settings with no fault injected, written out (not taken from
the service), so a test of them can fail."""

TEST_ENV = {
    "SPYGLASS_DEMO_BREAKER_FAILURES": "3",
    "SPYGLASS_DEMO_BREAKER_RESET_S": "1.5",
    "SPYGLASS_DEMO_REGISTRY_TTL_S": "3",
    "SPYGLASS_DEMO_HEARTBEAT_S": "0.5",
    "SPYGLASS_DEMO_DISCOVERY_CACHE_S": "0.5",
    "SPYGLASS_DEMO_RELAY_INTERVAL_S": "0.2",
    "SPYGLASS_DEMO_RATE_LIMIT": "25/second",
    "SPYGLASS_DEMO_CALL_TIMEOUT_S": "2",
}


class Spans:
    """A tracer provider whose finished spans can be read back."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def finished(self) -> list:
        """Return the finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        """Forget the spans seen so far."""
        self.exporter.clear()


def describe(demo: Demo, what: str) -> Callable[[], str]:
    """A failure message for ``wait_until``: what was awaited, then the children's output."""
    return lambda: f"{what}\n{demo.logs()}"


class Jaeger:
    """Read traces back through Spyglass's Jaeger-compatible API."""

    def __init__(self, ui_url: str) -> None:
        self.ui_url = ui_url

    def find(
        self,
        service: str,
        tags: dict[str, Any] | None = None,
        operation: str | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Return traces with a span of ``service`` matching ``tags`` and ``operation``."""
        params: dict[str, Any] = {"service": service, "limit": limit, "lookback": "1h"}
        if tags:
            params["tags"] = json.dumps(tags)
        if operation:
            params["operation"] = operation
        response = requests.get(f"{self.ui_url}/api/traces", params=params, timeout=5)
        response.raise_for_status()
        return response.json()["data"]

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """Return one trace, or None when it is not (yet) stored."""
        response = requests.get(f"{self.ui_url}/api/traces/{trace_id}", timeout=5)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()["data"][0]

    def dependencies(self) -> set[tuple[str, str]]:
        """Return the (parent, child) service edges Spyglass has seen."""
        end_ms = int(time.time() * 1000) + 60_000
        response = requests.get(
            f"{self.ui_url}/api/dependencies",
            params={"endTs": end_ms, "lookback": 3_600_000},
            timeout=5,
        )
        response.raise_for_status()
        return {(d["parent"], d["child"]) for d in response.json()["data"]}


def tag(span: dict[str, Any], key: str) -> Any:
    """Return the value of tag ``key`` of a Jaeger span, or None."""
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)


def is_true(value: Any) -> bool:
    """Return whether a Jaeger tag value means true (bool or string)."""
    return value is True or str(value).lower() == "true"


def service_of(trace: dict[str, Any], span: dict[str, Any]) -> str:
    """Return the service name of ``span`` in ``trace``."""
    return trace["processes"][span["processID"]]["serviceName"]


def process_tag(trace: dict[str, Any], span: dict[str, Any], key: str) -> Any:
    """Return a resource attribute of the process that emitted ``span``."""
    tags = trace["processes"][span["processID"]].get("tags", [])
    return next((t["value"] for t in tags if t["key"] == key), None)


def parent_id(span: dict[str, Any]) -> str | None:
    """Return the CHILD_OF parent span id of ``span``, or None for a root."""
    ref = next((r for r in span.get("references", []) if r["refType"] == "CHILD_OF"), None)
    return ref["spanID"] if ref else None


def log_events(span: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Return the logs (span events) of ``span`` called ``name`` as field dicts."""
    found = []
    for log in span.get("logs", []):
        fields = {f["key"]: f["value"] for f in log["fields"]}
        if fields.get("event") == name:
            found.append(fields)
    return found
