"""The gunicorn worker `spyglass serve` runs: gthread, but a request gets a thread only
once it has arrived in full.

gunicorn's threaded worker hands a connection to a thread as soon as the connection has
data, and the thread then blocks reading the request head and body. A client that sends
its headers a byte at a time (or a body slowly) holds that thread for as long as it
likes, so eight such clients stop a worker answering anyone, on both ports. Here the
worker's event loop reads each request without blocking, checks with h11 when it is
complete (head and body, any framing), and only then gives it to a thread, with the
bytes already read put back in front of gunicorn's own parser (bytes read past one
request, a pipelined next one, go through the loop again). A slow or silent client
costs a connection and the bytes it sent, not a thread; one that is too slow is closed:

* the request head must arrive within ``HEAD_TIMEOUT_S`` of the first chance to send it
  (a connection that sends nothing is closed then too);
* while the body arrives, no gap between reads may exceed ``BODY_IDLE_TIMEOUT_S`` and the
  whole request must arrive within ``REQUEST_TIMEOUT_S``;
* an idle kept-alive connection is closed after gunicorn's ``keepalive`` seconds.

A body announced larger than ``max_buffered`` (the OTLP body limit, plus room) is handed
over after its head, so the application answers 413 without the worker holding it.
"""

from __future__ import annotations

import errno
import selectors
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import h11
from gunicorn.workers.gthread import ThreadWorker

HEAD_TIMEOUT_S = 10.0
BODY_IDLE_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 60.0
READ_SIZE = 256 * 1024
MAX_HEAD_BYTES = 64 * 1024
DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024
HEAD_ROOM = 1024 * 1024
"""Bytes allowed beyond the body limit for chunk framing before a request is handed over."""


@dataclass
class _Arrival:
    """A request being read by the event loop."""

    parser: h11.Connection
    started: float
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    head_done: bool = False
    end: int | None = None
    """Where the request ends in ``received``, once its head gave a Content-Length (the
    body is then counted, not parsed)."""


class RequestBufferingWorker(ThreadWorker):
    """gunicorn's gthread worker, reading each request in its event loop before a thread
    sees it (see the module docstring). The body limit comes from the application's
    ``settings`` (``app.server.GunicornServer``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = getattr(self.app, "settings", None)
        self.max_buffered = settings.max_body_bytes if settings is not None else DEFAULT_MAX_BUFFERED
        self._arriving: dict[Any, _Arrival] = {}

    def enqueue_req(self, conn: Any) -> None:
        """Give ``conn`` to a thread once its next request is in; read it until then."""
        if getattr(conn, "spyglass_request_in", False) or self.cfg.is_ssl:
            # Complete already, or TLS (whose bytes must go through the handshake first).
            conn.spyglass_request_in = False
            super().enqueue_req(conn)
            return
        now = time.monotonic()
        arrival = _Arrival(
            parser=h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES),
            started=now,
            deadline=now + HEAD_TIMEOUT_S,
        )
        self._arriving[conn] = arrival
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        if conn.parser is not None:
            # Bytes read with the previous request (a pipelined one, whole or in part)
            # count as arrived; the rest is awaited like any other request.
            ahead = conn.parser.unreader.take_buffered()
            if ahead and self._arrived(conn, arrival, ahead):
                return
        # Whatever is there already is read now, not a turn of the loop later.
        self._on_readable(conn, conn.sock)

    def murder_pending(self) -> None:
        """Close connections whose requests are too slow to arrive (and gunicorn's own)."""
        super().murder_pending()
        now = time.monotonic()
        for conn, arrival in list(self._arriving.items()):
            if now >= arrival.deadline:
                self._drop(conn)

    def _on_readable(self, conn: Any, _sock: Any) -> None:
        arrival = self._arriving[conn]
        # Read all there is now: a body that arrives in many segments costs one turn of the
        # loop, not one each (each turn waits for the interpreter lock behind the threads).
        while True:
            try:
                data = conn.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:
                if err.errno not in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE):
                    self.log.debug("reading a request failed: %s", err)
                self._drop(conn)
                return
            if not data:
                self._drop(conn)
                return
            if self._arrived(conn, arrival, data):
                return
        if arrival.head_done:
            arrival.deadline = min(time.monotonic() + BODY_IDLE_TIMEOUT_S, arrival.started + REQUEST_TIMEOUT_S)

    def _arrived(self, conn: Any, arrival: _Arrival, data: bytes) -> bool:
        """Take ``data`` in; True once the connection has left the loop (its request
        handed to a thread, or refused)."""
        arrival.received += data
        if arrival.end is not None:
            complete = len(arrival.received) >= arrival.end
        else:
            arrival.parser.receive_data(data)
            try:
                complete = self._advance(conn, arrival)
            except h11.RemoteProtocolError as err:
                self._refuse(conn, err.error_status_hint, str(err))
                return True
        if complete:
            self._hand_over(conn, arrival)
        return complete

    def _advance(self, conn: Any, arrival: _Arrival) -> bool:
        """Consume h11 events; True once the request may go to a thread."""
        while True:
            event = arrival.parser.next_event()
            if event is h11.NEED_DATA:
                if arrival.head_done and len(arrival.received) > self.max_buffered + HEAD_ROOM:
                    return True  # a chunked body past the limit: the application refuses it
                return False
            if isinstance(event, h11.Request):
                arrival.head_done = True
                arrival.started = time.monotonic()
                headers = {name: value for name, value in event.headers}
                length = headers.get(b"content-length")
                if length is not None and int(length) > self.max_buffered:
                    return True  # announced too large: answered 413 without the body
                if length is not None and b"transfer-encoding" not in headers:
                    unparsed = len(arrival.parser.trailing_data[0])
                    arrival.end = len(arrival.received) - unparsed + int(length)
                if headers.get(b"expect", b"").lower() == b"100-continue" and event.http_version == b"1.1":
                    # The client waits for this before sending its body. gunicorn sends
                    # one more when it reads the head; clients accept several 1xx answers.
                    self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
                continue
            if not isinstance(event, h11.Data):
                return True  # EndOfMessage (or anything h11 may add): gunicorn takes it from here
            # h11.Data: the body so far; the raw bytes are kept in ``received``.

    def _hand_over(self, conn: Any, arrival: _Arrival) -> None:
        self._forget(conn)
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(arrival.received)
        conn.data_ready = True
        conn.spyglass_request_in = True
        self.enqueue_req(conn)

    def _refuse(self, conn: Any, status: int, reason: str) -> None:
        body = f"bad request: {reason}\n".encode()
        phrase = {431: "Request Header Fields Too Large"}.get(status, "Bad Request")
        head = f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        self._send(conn, head.encode() + b"Connection: close\r\n\r\n" + body)
        self._drop(conn)

    def _send(self, conn: Any, data: bytes) -> None:
        try:
            conn.sock.send(data)
        except OSError as err:
            self.log.debug("writing to a client failed: %s", err)

    def _forget(self, conn: Any) -> None:
        del self._arriving[conn]
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, conn: Any) -> None:
        self._forget(conn)
        self.nr_conns -= 1
        conn.close()
