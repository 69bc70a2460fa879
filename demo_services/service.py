"""Shared plumbing of every demo service: settings, /health, guarded /control, database,
registration with the registry, and the process's ``main()`` loop. The fault switches
/control changes are in :mod:`demo_services.chaos_switches`.

A service module only declares its routes and calls ``run_service``; failure injection
(error rate, latency with jitter, hang, out of service) is applied here, before any of its routes run; the
``bypass_breakers`` switch is read by the service's :class:`ServiceClient`, and the
``skip_compensation`` switch by the orders saga's orchestrator (to show a broken saga), and
``hold_at`` (a saga step's or an order event's name) by orders, which waits there while it
is set (to stop it between two steps, e.g. to kill it mid-saga).
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import logging
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import requests
from flask import Flask, Response, abort, jsonify, request
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.trace import Status, StatusCode
from werkzeug.serving import WSGIRequestHandler, make_server

from demo_services.chaos_switches import HANG_LIMIT_S, Chaos, added_delay_s
from demo_services.client import HTTP_STATUS, URL_FULL, InstanceOutOfService, failure_reason
from demo_services.patterns.discovery import DiscoveryClient, Instance
from demo_services.protocol import CONTROL_TOKEN_HEADER, ENDUSER_ID, OUT_OF_SERVICE_HEADER, USER_ID_HEADER
from demo_services.telemetry import configure_tracing, inject_headers, use_stable_http_conventions

if TYPE_CHECKING:
    import sqlalchemy as sa

LOOPBACK = ("127.0.0.1", "::1")
SERVER_HEADER = "spyglass-demo"
MAX_USER_ID = 64


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one demo service process, read from ``SPYGLASS_*`` variables."""

    port: int = 0
    host: str = "127.0.0.1"
    """Address the HTTP (and gRPC) server binds: loopback unless a container needs 0.0.0.0."""
    advertised_host: str = ""
    """Host name others reach this instance by, registered with the registry (a container's
    name); empty: 127.0.0.1."""
    instance_id: str = ""
    otlp_http_addr: str = "127.0.0.1:4318"
    auth_token: str = ""
    registry_url: str = "http://127.0.0.1:9001"
    data_dir: str = "./data/demo"
    control_token: str = ""
    jwt_key: str = field(default="", repr=False)
    grpc_port: int = 0
    rate_limit: str = "20/second"
    call_timeout_s: float = 2.0
    breaker_failures: int = 5
    breaker_reset_s: float = 10.0
    registry_ttl_s: float = 6.0
    heartbeat_s: float = 1.0
    discovery_cache_s: float = 2.0
    relay_interval_s: float = 0.5

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServiceSettings:
        """Read ``SPYGLASS_DEMO_<FIELD>`` from ``environ``; the OTLP address and the
        collector's bearer token come from ``SPYGLASS_OTLP_HTTP_ADDR`` and
        ``SPYGLASS_AUTH_TOKEN``, as for Spyglass itself.

        Raises ``ValueError`` naming the variable and value when one does not parse.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = _env_name(f.name)
            raw = environ.get(name)
            if raw is None:
                continue
            kind = type(f.default)
            try:
                values[f.name] = kind(raw)
            except ValueError as err:
                raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from err
        settings = cls(**values)
        if not settings.control_token:
            settings = cls(**{**asdict(settings), "control_token": secrets.token_hex(16)})
        return settings

    @property
    def reachable_host(self) -> str:
        """The host registered for this instance: ``advertised_host``, else 127.0.0.1."""
        return self.advertised_host or "127.0.0.1"


@dataclass
class Service:
    """What a service module gets: its app, settings, chaos switches and collaborators."""

    name: str
    app: Flask
    settings: ServiceSettings
    chaos: Chaos
    depends_on: list[str]
    engine: sa.Engine | None = None
    discovery: DiscoveryClient | None = None
    background: list[Callable[[], None]] = field(default_factory=list)
    grpc_url: str = ""
    """host:port of the service's gRPC server, registered beside its HTTP URL (users only)."""


def make_service(
    name: str,
    settings: ServiceSettings,
    *,
    depends_on: list[str] | None = None,
    database: bool = True,
    untraced_urls: str = "health,control",
    trust_user_header: bool = True,
) -> Service:
    """Build the Flask app with /health and /control, a database file and discovery.

    Requests whose URL matches one of the comma-separated regular expressions
    ``untraced_urls`` get no span (FlaskInstrumentor's ``excluded_urls``). A service
    behind the gateway trusts its ``X-User-Id`` header (the gateway sets it from a
    verified token) and records it as ``enduser.id`` on its server span; the gateway,
    where outside requests enter, passes ``trust_user_header=False``.
    """
    app = Flask(name)
    chaos = Chaos()
    engine = None
    if database:
        engine = create_engine(Path(settings.data_dir) / f"{name}.db")
    discovery = DiscoveryClient(
        lambda service: lookup_instances(settings.registry_url, service),
        # An instance that says it is out of service handled nothing: try the next one, as
        # for a refused connection (its registration may not have expired from the cache).
        failover_errors=(requests.ConnectionError, InstanceOutOfService),
        cache_ttl_s=settings.discovery_cache_s,
        describe=failure_reason,
    )
    service = Service(name, app, settings, chaos, list(depends_on or []), engine, discovery)
    # Instrument before any other hook: a hook that answers early (an injected error,
    # a refused token) skips the hooks after it, and its request must still be traced.
    use_stable_http_conventions()
    FlaskInstrumentor().instrument_app(app, excluded_urls=untraced_urls)

    if trust_user_header:

        @app.before_request
        def _record_caller() -> None:
            user_id = request.headers.get(USER_ID_HEADER)
            if user_id:
                trace.get_current_span().set_attribute(ENDUSER_ID, user_id[:MAX_USER_ID])

    @app.before_request
    def _inject_failures() -> Response | None:
        if request.path == "/control":
            return None
        if chaos.stopped:
            response = _json_error(503, f"{name} is stopped")
            response.headers[OUT_OF_SERVICE_HEADER] = "1"
            return response
        if request.path == "/health":
            return None
        deadline = time.monotonic() + HANG_LIMIT_S
        while chaos.hang and time.monotonic() < deadline:
            time.sleep(0.05)
        if chaos.latency_ms or chaos.jitter_ms:
            time.sleep(added_delay_s(chaos.latency_ms, chaos.jitter_ms))
        if chaos.error_rate and random.random() < chaos.error_rate:
            return _json_error(500, f"injected error in {name}")
        return None

    @app.get("/health")
    def health() -> Response:
        held = {"holding": chaos.holding} if chaos.holding else {}
        return jsonify(status="ok", service=name, instance_id=settings.instance_id or name, **held)

    @app.route("/control", methods=["GET", "POST"])
    def control() -> Response:
        if request.remote_addr not in LOOPBACK:
            abort(_json_error(403, "control is available on loopback only"))
        token = request.headers.get(CONTROL_TOKEN_HEADER, "")
        if not hmac.compare_digest(token, settings.control_token):
            abort(_json_error(403, f"missing or wrong {CONTROL_TOKEN_HEADER}"))
        if request.method == "POST":
            changes = request.get_json(silent=True)
            if not isinstance(changes, dict):
                abort(_json_error(400, "body must be a JSON object of settings"))
            try:
                chaos.update(changes)
            except ValueError as err:
                abort(_json_error(400, str(err)))
        return jsonify(chaos.public())

    return service


def create_engine(path: Path) -> sa.Engine:
    """Open (creating) the SQLite file at ``path`` in WAL mode, safe across threads.

    SQLAlchemy is imported here, not with this module: a service without a database (the
    gateway) then never loads it, which saves it some 13 MB.
    """
    import sqlalchemy as sa

    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 15})

    @sa.event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return engine


def create_schema(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Create missing tables, serialized across processes sharing the database file.

    Two inventory instances share one file and start together; without the lock both
    may try to create the same table.
    """
    database = engine.url.database
    assert database is not None
    with open(f"{database}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        metadata.create_all(engine)


def lookup_instances(registry_url: str, service: str) -> list[Instance]:
    """Ask the registry for the healthy instances of ``service``, with the trace context
    of the current span (discovery's lookup span) in the request's headers; a registry
    that cannot be asked marks that span as failed."""
    span = trace.get_current_span()
    headers: dict[str, str] = {}
    inject_headers(headers)
    url = f"{registry_url}/services/{service}"
    span.set_attribute(URL_FULL, url)
    try:
        response = requests.get(url, headers=headers, timeout=1.0)
    except requests.RequestException as err:
        span.set_status(Status(StatusCode.ERROR, f"registry unreachable: {failure_reason(err)}"))
        return []
    span.set_attribute(HTTP_STATUS, response.status_code)
    if response.status_code != 200:
        span.set_status(Status(StatusCode.ERROR, f"registry answered {response.status_code}"))
        return []
    return [
        Instance(item["service"], item["instance_id"], item["url"], item.get("grpc_url") or "")
        for item in response.json()["instances"]
    ]


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, answering ``Server: spyglass-demo`` instead of its and Python's versions."""

    def version_string(self) -> str:
        return SERVER_HEADER


def run_service(service: Service) -> int:
    """Serve ``service`` until SIGTERM/SIGINT, registered with heartbeats; return 0."""
    settings = service.settings
    instance_id = settings.instance_id or service.name
    # Health checks and heartbeats every second would drown the useful output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Every process reports service.instance.id, the id it registers under, so traffic
    # in traces can be matched to registry instances.
    provider = configure_tracing(service.name, settings.otlp_http_addr, instance_id, settings.auth_token)
    server = make_server(settings.host, settings.port, service.app, threaded=True, request_handler=_RequestHandler)
    url = f"http://{settings.reachable_host}:{server.server_port}"
    stop = threading.Event()
    if service.name != "registry":
        registration = {
            "service": service.name,
            "instance_id": instance_id,
            "url": url,
            "depends_on": service.depends_on,
        }
        if service.grpc_url:
            registration["grpc_url"] = service.grpc_url
        threading.Thread(
            target=_keep_registered,
            args=(settings.registry_url, registration, settings.heartbeat_s, stop),
            name="heartbeat",
            daemon=True,
        ).start()
    for start in service.background:
        start()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"{service.name} ({instance_id}) listening on {url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        if service.name != "registry":
            _deregister(settings.registry_url, instance_id)
        provider.shutdown()
    return 0


def main_for(name: str, build: Callable[[ServiceSettings], Service]) -> None:
    """Entry point body shared by the service modules: read settings, build, serve."""
    try:
        settings = ServiceSettings.from_env(os.environ)
    except ValueError as err:
        print(f"{name}: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    raise SystemExit(run_service(build(settings)))


def error_response(status: int, message: str) -> Response:
    """Return the demo's JSON error shape ``{"error": message}`` with ``status``."""
    return _json_error(status, message)


def _json_error(status: int, message: str) -> Response:
    response = Response(json.dumps({"error": message}), status=status)
    response.mimetype = "application/json"
    return response


def _keep_registered(registry_url: str, registration: dict[str, Any], interval_s: float, stop: threading.Event) -> None:
    registered = False
    while not stop.is_set():
        try:
            if not registered:
                response = requests.post(f"{registry_url}/register", json=registration, timeout=1)
                registered = response.status_code in (200, 201)
            else:
                response = requests.put(
                    f"{registry_url}/instances/{registration['instance_id']}/heartbeat",
                    timeout=1,
                )
                registered = response.status_code == 200
        except requests.RequestException:
            registered = False
        stop.wait(interval_s if registered else min(interval_s, 0.2))


def _deregister(registry_url: str, instance_id: str) -> None:
    # If the registry cannot be reached, it drops us when the TTL runs out anyway.
    with contextlib.suppress(requests.RequestException):
        requests.delete(f"{registry_url}/instances/{instance_id}", timeout=0.5)


def _env_name(field_name: str) -> str:
    if field_name in ("otlp_http_addr", "auth_token"):
        return f"SPYGLASS_{field_name.upper()}"
    return f"SPYGLASS_DEMO_{field_name.upper()}"
