"""A slow client never stalls the server: on a real `spyglass serve` with one worker,
100 connections that trickle their headers or bodies or send nothing leave other clients'
requests on both ports fast, silent connections are closed after the head timeout, and
requests of every framing still arrive whole through the worker's event loop."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.worker import HEAD_TIMEOUT_S
from tests.helpers import ServeProcess, wait_until
from tests.slow_clients import SILENT, SLOW_HEAD, otlp_batch, p99, probe, slow_clients

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path_factory.mktemp("slow") / "data", "--workers", "1", "--max-body-mb", "1")
    try:
        yield process
    finally:
        process.stop()


def _raw(port: int, data: bytes, *, pause_after: int | None = None, timeout: float = 10) -> bytes:
    """Send ``data`` on a new connection (pausing 0.3 s after ``pause_after`` bytes) and read
    until the server closes it or ``timeout`` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if pause_after is None:
            sock.sendall(data)
        else:
            sock.sendall(data[:pause_after])
            time.sleep(0.3)
            sock.sendall(data[pause_after:])
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


def test_other_clients_stay_fast_under_100_slow_connections(server: ServeProcess) -> None:
    with slow_clients([server.ui_port, server.otlp_port], count=100, seconds=HEAD_TIMEOUT_S + 10) as clients:
        time.sleep(0.5)
        # Long enough for the server to close the first slow and silent connections and
        # the clients to open new ones.
        times = probe(server.ui, server.otlp, seconds=HEAD_TIMEOUT_S + 3)
        for name, values in times.items():
            assert len(values) >= 20, (name, len(values))
            assert p99(values) < 1.0, f"{name}: p99 {p99(values):.2f} s over {len(values)} requests"
        for kind in (SLOW_HEAD, SILENT):
            closed = clients.closed_count(kind)
            assert closed >= 33, f"{closed} connections of kind {kind} closed after their head timeout"
    assert requests.get(server.ui + "/health", timeout=5).status_code == 200


def _stored(server: ServeProcess, count: int) -> bool:
    doc = requests.get(server.ui + "/api/traces?service=probe&lookback=1h&limit=100", timeout=5).json()
    return len(doc["data"]) >= count


def test_chunked_gzip_and_split_requests_arrive_whole(server: ServeProcess) -> None:
    body = gzip.compress(otlp_batch())
    chunked = requests.post(
        server.otlp + "/v1/traces",
        data=iter([body[:10], body[10:]]),
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert chunked.status_code == 200, chunked.text
    assert "chunked" in chunked.request.headers["Transfer-Encoding"]
    batch = otlp_batch()
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(batch)}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = _raw(server.otlp_port, head + batch, pause_after=len(head) - 7)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    wait_until(lambda: _stored(server, 2), timeout=10, message="both batches stored")


def test_expect_continue_gets_its_100_then_the_answer(server: ServeProcess) -> None:
    batch = otlp_batch()
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(batch)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.otlp_port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(batch)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    final = answer.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b"")
    assert final.startswith(b"HTTP/1.1 200 "), answer[:300]


def test_pipelined_requests_are_each_answered(server: ServeProcess) -> None:
    one = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = _raw(server.ui_port, one + one + last)
    assert answer.count(b"HTTP/1.1 200 ") == 3, answer


def test_a_stalled_pipelined_request_holds_no_thread(server: ServeProcess) -> None:
    """A complete request followed by the start of another that never finishes."""
    stalled = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", server.ui_port), timeout=5)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nX-Stalled: a")
            stalled.append(sock)
        for sock in stalled:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        for _ in range(10):
            began = time.monotonic()
            assert requests.get(server.ui + "/health", timeout=5).status_code == 200
            assert time.monotonic() - began < 1.0
    finally:
        for sock in stalled:
            sock.close()


def test_oversized_and_malformed_requests_get_a_4xx_with_a_message(server: ServeProcess) -> None:
    too_big = requests.post(server.otlp + "/v1/traces", data=b"\0" * (1024 * 1024 + 1), headers=PROTOBUF, timeout=10)
    assert too_big.status_code == 413, too_big.text
    garbage = _raw(server.ui_port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 "), garbage[:200]
    assert b"bad request" in garbage.lower()
    huge_head = _raw(server.ui_port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert huge_head.startswith(b"HTTP/1.1 431 "), huge_head[:200]
    assert requests.get(server.ui + "/health", timeout=5).status_code == 200


def test_the_readme_names_the_timeouts() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"{HEAD_TIMEOUT_S:g} s" in readme and "nginx" in readme
