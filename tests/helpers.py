"""Helpers shared by tests: OTLP request builders and a real `spyglass serve` process."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, message: str | Callable[[], str] = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Past the deadline, fail with ``message`` (a callable is called then, so it can add
    what a process printed meanwhile).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting: {detail}")
        time.sleep(interval)


RUN_MARK = "SPYGLASS_TEST_RUN"
"""Every process a test run starts inherits this variable (set by tests/conftest.py), so
whatever outlives the run, grandchildren included, can be found by it."""
STOP_GRACE_S = 10.0
STRAGGLER_GRACE_S = 2.0


def start_process(cmd: list[str], **popen: Any) -> subprocess.Popen:
    """Start ``cmd`` in a session (and process group) of its own, so that
    :func:`stop_process` can end it together with every process it started."""
    return subprocess.Popen(cmd, start_new_session=True, **popen)


def stop_process(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """Stop ``proc`` as its user would (SIGTERM, so it stops what it started in its own
    order), SIGKILL after ``grace_s``; then end whatever of its process group is left."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        wait_until(lambda: not group_members(proc.pid), timeout=STRAGGLER_GRACE_S)
    except AssertionError:
        _signal_group(proc.pid, signal.SIGKILL)
        wait_until(lambda: not group_members(proc.pid), timeout=5, message=f"process group {proc.pid} to end")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _processes() -> Iterator[tuple[int, str, int]]:
    """(pid, state, process group) of every live process, from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        yield int(entry.name), fields[0], int(fields[2])


def group_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are still running (zombies are over)."""
    return [pid for pid, state, group in _processes() if group == pgid and state != "Z"]


def processes_marked(mark: str, nested: bool = False) -> dict[int, str]:
    """Running processes (but this one) whose environment has ``RUN_MARK=mark``, or with
    ``nested`` a mark under it (``<mark>.gw0``, a pytest-xdist worker's): {pid: command line}."""
    key = f"{RUN_MARK}=".encode()
    wanted = mark.encode()
    found = {}
    for pid, state, _group in _processes():
        if pid == os.getpid() or state == "Z":
            continue
        try:
            environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
            values = [entry[len(key) :] for entry in environ if entry.startswith(key)]
            if not any(value.startswith(wanted + b".") if nested else value == wanted for value in values):
                continue
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
            found[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


class ServeProcess:
    """A real `spyglass serve` on free loopback ports, in a process group of its own.

    ``program``, if given, is run instead, with the OTLP and UI addresses appended (the
    ingest benchmark's discard receiver); ``extra`` are then its further arguments.
    ``bind_host`` (e.g. ``0.0.0.0``) is the host of both addresses; it is still asked on
    127.0.0.1. If
    anything goes wrong while it starts, the whole group is stopped before the error
    propagates.
    """

    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        program: list[str] | None = None,
        bind_host: str = "127.0.0.1",
    ) -> None:
        self.ui_port, self.otlp_port = free_port(), free_port()
        self.ui = f"http://127.0.0.1:{self.ui_port}"
        self.otlp = f"http://127.0.0.1:{self.otlp_port}"
        self.log = data_dir.parent / f"serve-{self.ui_port}.log"
        ui_addr, otlp_addr = f"{bind_host}:{self.ui_port}", f"{bind_host}:{self.otlp_port}"
        if program:
            cmd = [*program, otlp_addr, ui_addr, *extra]
        else:
            cmd = [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--data-dir",
                str(data_dir),
                "--ui-addr",
                ui_addr,
                "--otlp-http-addr",
                otlp_addr,
                "--prune-interval-s",
                "0",
                *extra,
            ]
        self._out = self.log.open("w")
        try:
            self.proc = start_process(
                cmd, cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        except BaseException:
            self._out.close()
            raise
        try:
            wait_until(self._healthy, timeout=30, message=lambda: f"spyglass serve to answer /health\n{self.output()}")
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"spyglass serve exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return requests.get(self.ui + "/health", timeout=1).ok and requests.get(self.otlp + "/health", timeout=1).ok
        except requests.RequestException:
            return False

    def output(self) -> str:
        """What the server printed so far."""
        self._out.flush()
        return self.log.read_text()[-4000:]

    def stop(self) -> None:
        """Stop the server and every process it started (SIGTERM, then SIGKILL after 10 s)."""
        try:
            stop_process(self.proc)
        finally:
            self._out.close()


def any_value(value: Any) -> AnyValue:
    """A protobuf AnyValue from a Python value (bytes stay bytes; dicts become kvlists)."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value.items())
        return out
    if value is None:
        return AnyValue()
    raise TypeError(type(value))


def json_value(value: Any) -> dict[str, Any]:
    """The OTLP/JSON mapping of a Python value, as the specification writes it."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [json_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": json_value(v)} for k, v in value.items()]}}
    if value is None:
        return {}
    raise TypeError(type(value))


def pb_request(resource_spans: list[dict[str, Any]]) -> ExportTraceServiceRequest:
    """Build a protobuf request from a compact description.

    Each item: {"service": str, "resource": {...}, "scope": (name, version), "spans": [span dicts]}
    with span dicts holding trace_id/span_id/parent (hex), name, kind, start, end,
    attributes, events [(time, name, attrs)], links [(trace, span, attrs)], status (code, msg),
    flags.
    """
    request = ExportTraceServiceRequest()
    for item in resource_spans:
        rs = request.resource_spans.add()
        attrs = {"service.name": item["service"], **item.get("resource", {})}
        rs.resource.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attrs.items())
        ss = rs.scope_spans.add()
        name, version = item.get("scope", ("test", "1.0"))
        ss.scope.name, ss.scope.version = name, version
        for sd in item["spans"]:
            span = ss.spans.add()
            span.trace_id = bytes.fromhex(sd["trace_id"])
            span.span_id = bytes.fromhex(sd["span_id"])
            if sd.get("parent"):
                span.parent_span_id = bytes.fromhex(sd["parent"])
            span.name = sd.get("name", "op")
            span.kind = sd.get("kind", PbSpan.SPAN_KIND_INTERNAL)
            span.start_time_unix_nano = sd["start"]
            span.end_time_unix_nano = sd["end"]
            span.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in sd.get("attributes", {}).items())
            for t, ename, eattrs in sd.get("events", []):
                ev = span.events.add(time_unix_nano=t, name=ename)
                ev.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in eattrs.items())
            for lt, ls, lattrs in sd.get("links", []):
                lk = span.links.add(trace_id=bytes.fromhex(lt), span_id=bytes.fromhex(ls))
                lk.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in lattrs.items())
            if "status" in sd:
                span.status.code, span.status.message = sd["status"]
            if "flags" in sd:
                span.flags = sd["flags"]
    return request


def json_request(resource_spans: list[dict[str, Any]]) -> bytes:
    """The same description as :func:`pb_request`, written in the OTLP/JSON mapping by hand.

    The one OTLP/JSON writer of the tests. It writes what the specification allows and
    its own example does: upper-case trace ids, start times as strings and end times as
    numbers.
    """
    doc: dict[str, Any] = {"resourceSpans": []}
    for item in resource_spans:
        attrs = {"service.name": item["service"], **item.get("resource", {})}
        name, version = item.get("scope", ("test", "1.0"))
        spans = []
        for sd in item["spans"]:
            span: dict[str, Any] = {
                "traceId": sd["trace_id"].upper(),
                "spanId": sd["span_id"],
                "name": sd.get("name", "op"),
                "kind": sd.get("kind", 1),
                "startTimeUnixNano": str(sd["start"]),
                "endTimeUnixNano": sd["end"],
                "attributes": [{"key": k, "value": json_value(v)} for k, v in sd.get("attributes", {}).items()],
            }
            if sd.get("parent"):
                span["parentSpanId"] = sd["parent"]
            if sd.get("events"):
                span["events"] = [
                    {
                        "timeUnixNano": str(t),
                        "name": n,
                        "attributes": [{"key": k, "value": json_value(v)} for k, v in a.items()],
                    }
                    for t, n, a in sd["events"]
                ]
            if sd.get("links"):
                span["links"] = [
                    {
                        "traceId": lt,
                        "spanId": ls,
                        "attributes": [{"key": k, "value": json_value(v)} for k, v in a.items()],
                    }
                    for lt, ls, a in sd["links"]
                ]
            if "status" in sd:
                span["status"] = {"code": sd["status"][0], "message": sd["status"][1]}
            if "flags" in sd:
                span["flags"] = sd["flags"]
            spans.append(span)
        doc["resourceSpans"].append(
            {
                "resource": {"attributes": [{"key": k, "value": json_value(v)} for k, v in attrs.items()]},
                "scopeSpans": [{"scope": {"name": name, "version": version}, "spans": spans}],
            }
        )
    return json.dumps(doc).encode()


def tags_of(jaeger_span: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """A Jaeger span's tags as {key: (type, value)}."""
    return {t["key"]: (t["type"], t["value"]) for t in jaeger_span["tags"]}
