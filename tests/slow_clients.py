"""Slow and silent HTTP clients, and a probe that times other clients' requests meanwhile.

Used by the slow-client test and by bench/slow_clients.py, always against a server on
loopback; every loop is bounded in time and stops by itself.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from tests.helpers import pb_request

PROBE_TIMEOUT_S = 5.0


SLOW_HEAD, SLOW_BODY, SILENT = 0, 1, 2


@dataclass
class SlowClients:
    """``count`` connections to ``ports``, a third of each kind: sending the request head
    a byte at a time, sending a complete head and then the body a byte at a time, and
    sending nothing at all. A connection the server closes is opened again at once, as an
    attacker would, so there are ``count`` of them all along. Runs for at most ``seconds``
    once started; ``closed_count(kind)`` says how many the server has closed."""

    ports: list[int]
    count: int = 100
    seconds: float = 20.0
    interval_s: float = 0.5
    sockets: list[socket.socket] = field(default_factory=list)
    _closed: list[int] = field(default_factory=lambda: [0, 0, 0])
    _sent: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SlowClients:
        """Open every connection, then trickle bytes from one thread."""
        for i in range(self.count):
            self.sockets.append(self._connect(i))
            self._sent.append(0)
        self._thread = threading.Thread(target=self._trickle, name="slow-clients", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop trickling and close every connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()

    def closed_count(self, kind: int) -> int:
        """How many connections of ``kind`` the server has closed so far."""
        with self._lock:
            return self._closed[kind]

    def _connect(self, i: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.ports[i % len(self.ports)]), timeout=5)
        sock.setblocking(False)
        return sock

    @staticmethod
    def _script(i: int) -> tuple[bytes, bytes]:
        """What connection ``i`` sends at once, and what it then sends a byte a round."""
        kind = i % 3
        if kind == SLOW_HEAD:
            return b"", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 4000 + b"\r\n\r\n"
        if kind == SLOW_BODY:
            return b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4000\r\n\r\n", b"\0" * 4000
        return b"", b""

    @staticmethod
    def _closed_by_peer(sock: socket.socket) -> bool:
        try:
            return sock.recv(4096) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _trickle(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            for i, sock in enumerate(self.sockets):
                at_once, trickle = self._script(i)
                try:
                    if self._closed_by_peer(sock):
                        raise ConnectionResetError
                    if self._sent[i] == 0 and at_once:
                        sock.send(at_once)
                    if self._sent[i] < len(trickle):
                        sock.send(trickle[self._sent[i] : self._sent[i] + 1])
                        self._sent[i] += 1
                except OSError:
                    sock.close()
                    with self._lock:
                        self._closed[i % 3] += 1
                    self.sockets[i] = self._connect(i)
                    self._sent[i] = 0
            self._stop.wait(self.interval_s)


@contextmanager
def slow_clients(ports: list[int], count: int = 100, seconds: float = 20.0) -> Iterator[SlowClients]:
    """``SlowClients`` for the duration of the block."""
    clients = SlowClients(ports, count=count, seconds=seconds).start()
    try:
        yield clients
    finally:
        clients.stop()


def otlp_batch() -> bytes:
    """A small protobuf batch, one new trace each call."""
    now = time.time_ns()
    trace_id = f"{now:032x}"[-32:]
    span = {"trace_id": trace_id, "span_id": f"{now:016x}"[-16:], "name": "probe", "start": now, "end": now + 1000}
    return pb_request([{"service": "probe", "spans": [span]}]).SerializeToString()


def probe(ui: str, otlp: str, seconds: float, pause_s: float = 0.05) -> dict[str, list[float]]:
    """Time requests of well-behaved clients, each on a new connection, for ``seconds``:
    the dashboard's overview page and an OTLP export. A request that fails or takes longer
    than PROBE_TIMEOUT_S counts as PROBE_TIMEOUT_S."""
    calls: dict[str, Callable[[], requests.Response]] = {
        "dashboard": lambda: requests.get(f"{ui}/", timeout=PROBE_TIMEOUT_S),
        "otlp": lambda: requests.post(
            f"{otlp}/v1/traces",
            data=otlp_batch(),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=PROBE_TIMEOUT_S,
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, call in calls.items():
            began = time.monotonic()
            try:
                ok = call().status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = time.monotonic() - began
            times[name].append(elapsed if ok else max(elapsed, PROBE_TIMEOUT_S))
        time.sleep(pause_s)
    return times


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * len(ordered) + 0.5)) - 1)]
