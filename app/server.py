"""Serving: gunicorn bound to the OTLP and UI addresses, one app per worker.

Requests that reach the OTLP port see only the receiver; the UI port serves the
dashboard and the JSON API (and accepts OTLP too, which is handy behind one proxy).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import gunicorn.http.wsgi
from gunicorn.app.base import BaseApplication

from app.factory import create_app, receiver_limits
from app.headers import with_security_headers
from app.settings import Settings, split_addr

OTLP_PATHS = ("/v1/traces", "/api/v2/spans", "/health")
SERVER_HEADER = "spyglass"

log = logging.getLogger(__name__)


class PortDispatcher:
    """WSGI middleware: on the OTLP port, only the receiver paths exist (OTLP, Zipkin v2, health)."""

    def __init__(self, app: Callable, otlp_port: int) -> None:
        self.app = app
        self.otlp_port = str(otlp_port)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("SERVER_PORT") == self.otlp_port and environ.get("PATH_INFO") not in OTLP_PATHS:
            body = b'{"code":5,"message":"not found: the OTLP port serves POST /v1/traces and POST /api/v2/spans"}'
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("404 Not Found", with_security_headers(headers))
            return [body]
        return self.app(environ, start_response)


def build_wsgi(settings: Settings) -> PortDispatcher:
    """The app for one worker process. Background work runs in the maintenance process."""
    app = create_app(settings, migrate=False, background_checkpoints=False)
    return PortDispatcher(app, split_addr(settings.otlp_http_addr)[1])


REBALANCE_EVERY = 16
"""With several workers, every this many requests a worker closes the connection after
answering (see :func:`_spread_connections`)."""


def _spread_connections() -> Callable[[Any, Any], None]:
    """A gunicorn ``pre_request`` hook that keeps keep-alive connections spread over workers.

    A worker keeps every connection it accepts for as long as the client keeps it alive,
    so a few long-lived exporter connections that happened to land on one worker leave the
    others idle for good (measured: half the ingest rate in such runs). Closing one
    connection in REBALANCE_EVERY, after its response, makes the client reconnect, and the
    new connection goes to whichever worker accepts first, usually the less busy one.
    """
    counter = itertools.count(1)

    def hook(_worker: Any, req: Any) -> None:
        if next(counter) % REBALANCE_EVERY == 0:
            req.must_close = True

    return hook


class GunicornServer(BaseApplication):
    """gunicorn bound to the OTLP and UI addresses, loading ``loader(settings)`` in each worker."""

    def __init__(self, settings: Settings, loader: Callable[[Settings], Callable] | None = None) -> None:
        self.settings = settings
        self.loader = loader or build_wsgi
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        # gunicorn writes "Server: gunicorn" itself, with no setting to change it: name
        # the product instead of the server software answering for it.
        gunicorn.http.wsgi.SERVER = SERVER_HEADER
        self.cfg.set("bind", [s.otlp_http_addr, s.ui_addr])
        self.cfg.set("workers", s.workers)
        # gthread, reading each request in the event loop before a thread takes it: a slow
        # or silent client costs a connection, not a thread (see app/worker.py).
        self.cfg.set("worker_class", "app.worker.RequestBufferingWorker")
        self.cfg.set("threads", 8)
        self.cfg.set("timeout", 60)
        self.cfg.set("graceful_timeout", 10)
        self.cfg.set("keepalive", 30)
        if os.path.isdir("/dev/shm"):
            # Workers touch their heartbeat file on every turn of their loop: on tmpfs that
            # is half the cost of a disk-backed /tmp (gunicorn's own advice for containers).
            self.cfg.set("worker_tmp_dir", "/dev/shm")
        self.cfg.set("accesslog", None)
        self.cfg.set("loglevel", "warning")
        self.cfg.set("proc_name", "spyglass")
        self.cfg.set("when_ready", self._when_ready)
        if s.workers > 1:
            self.cfg.set("pre_request", _spread_connections())

    def _when_ready(self, _server: Any) -> None:
        s = self.settings
        print(
            f"Spyglass is ready: dashboard http://{s.ui_addr}/  OTLP/HTTP http://{s.otlp_http_addr}/v1/traces",
            flush=True,
        )

    def load(self) -> Callable:
        return self.loader(self.settings)


class MaintenanceSupervisor:
    """Runs ``python -m collectors.maintenance`` and starts it again if it ever exits.

    The settings travel in the environment: a database URL may hold a password, which
    must not show on a command line.
    """

    def __init__(self, settings: Settings) -> None:
        self.env = {
            **os.environ,
            "SPYGLASS_DATABASE_URL": settings.store_url,
            "SPYGLASS_RETENTION_HOURS": str(settings.retention_hours),
            "SPYGLASS_MAX_SPANS": str(settings.max_spans),
            "SPYGLASS_PRUNE_INTERVAL_S": str(settings.prune_interval_s),
        }
        self.process: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="spyglass-maintenance-watch", daemon=True)

    def start(self) -> MaintenanceSupervisor:
        """Start the process and the thread that watches it."""
        self.process = self._launch()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching, then stop the process."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def _launch(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "collectors.maintenance"], env=self.env)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            assert self.process is not None
            code = self.process.poll()
            if code is not None and not self._stop.is_set():
                log.warning("the maintenance process exited with %s; starting it again", code)
                self.process = self._launch()


def run(settings: Settings) -> int:
    """Serve until interrupted; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.argv = sys.argv[:1]  # gunicorn parses argv; our options are already read
    maintenance = MaintenanceSupervisor(settings).start()
    children: list[multiprocessing.process.BaseProcess] = []
    if settings.otlp_grpc_enabled:
        from collectors.grpc_receiver import serve as serve_grpc

        args = (
            settings.otlp_grpc_addr,
            settings.store_url,
            receiver_limits(settings),
            settings.max_body_bytes,
            settings.auth_token,
        )
        what = f"the OTLP/gRPC receiver on {settings.otlp_grpc_addr}"
        children.append(_spawn(serve_grpc, args, "spyglass-grpc", what))
        print(f"OTLP/gRPC on {settings.otlp_grpc_addr}", flush=True)
    try:
        GunicornServer(settings).run()
    finally:
        for child in children:
            child.terminate()
            child.join(timeout=10)
        maintenance.stop()
    return 0


def _spawn(target: Callable, args: tuple, name: str, what: str) -> multiprocessing.process.BaseProcess:
    """Start ``target(*args, ready)`` in a fresh process and wait until it says it is ready."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    process = ctx.Process(target=target, args=(*args, ready), name=name, daemon=True)
    process.start()
    if not ready.wait(timeout=30):
        process.terminate()
        raise SystemExit(f"spyglass: {what} did not start")
    return process
