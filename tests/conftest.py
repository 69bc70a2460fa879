"""Shared fixtures: real SQLite files, real loopback servers, the real OTLP exporter."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.settings import Settings
from collectors.store import SpanStore
from tests.helpers import RUN_MARK, processes_marked

FIXTURES = Path(__file__).resolve().parent / "fixtures"
POSTGRES_URL = os.environ.get("SPYGLASS_TEST_POSTGRES_URL", "")
LEFTOVER_GRACE_S = 5.0


def pytest_configure(config: pytest.Config) -> None:
    """Mark this run in the environment every process it starts inherits.

    Under pytest-xdist a worker inherits the controller's mark and extends it with its id
    (``<mark>.gw0``), so each worker checks only what its own tests started, never what
    another worker's running tests did, and the controller checks what any worker left.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        os.environ[RUN_MARK] = secrets.token_hex(8)
    else:
        os.environ[RUN_MARK] = f"{os.environ[RUN_MARK]}.{workerinput['workerid']}"
    if config.pluginmanager.has_plugin("xdist"):
        config.pluginmanager.register(_WorkerLeftovers(), _WorkerLeftovers.NAME)


class _WorkerLeftovers:
    """The controller's collection of what the workers' own checks found (and killed)."""

    NAME = "spyglass-worker-leftovers"
    KEY = "spyglass_leftover_processes"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_testnodedown(self, node, error: object | None) -> None:
        self.lines += getattr(node, "workeroutput", {}).get(self.KEY, [])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if any process it started outlived it (after killing each one).

    A worker of pytest-xdist hands what it found to the controller, which reports it.
    The controller itself starts no test's process; the processes carrying its own mark
    are the workers, so it looks for the workers' marks, whatever a worker that died
    before its own check left behind.
    """
    config = session.config
    controller = config.pluginmanager.has_plugin("dsession")
    lines = _kill_leftovers(os.environ[RUN_MARK], nested=controller)
    if hasattr(config, "workerinput"):
        config.workeroutput[_WorkerLeftovers.KEY] = lines
        return
    collected = config.pluginmanager.get_plugin(_WorkerLeftovers.NAME)
    if collected is not None:
        lines = collected.lines + lines
    if not lines:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n" + "\n".join(lines), red=True, bold=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _kill_leftovers(mark: str, nested: bool) -> list[str]:
    """Wait a little for the processes marked ``mark`` (or, ``nested``, a mark under it)
    to end; SIGKILL those still running and describe them."""
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while (left := processes_marked(mark, nested=nested)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not left:
        return []
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    where = f" (worker {worker})" if worker else ""
    lines = [f"{len(left)} process(es) started by the tests{where} were still running at the end (now killed):"]
    return lines + [f"  {pid}: {cmd}" for pid, cmd in sorted(left.items())]


def _backends() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    params.append(
        pytest.param(
            "postgresql",
            id="postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="SPYGLASS_TEST_POSTGRES_URL is not set"),
            ],
        )
    )
    return params


@contextmanager
def fresh_database(backend: str, directory: Path, name: str = "spans") -> Iterator[str]:
    """The URL of a fresh, empty database: the SQLite file ``<directory>/<name>.db``, or a
    new schema on the test PostgreSQL, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'{name}.db'}"
        return
    import uuid

    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgresql``: the backend of a URL :func:`fresh_database` made."""
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or a new schema on the test PostgreSQL."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for one test: its own data directory and database."""
    return Settings(data_dir=str(tmp_path / "data"), database_url=database_url, prune_interval_s=0)


@pytest.fixture
def store(settings: Settings) -> Iterator[SpanStore]:
    """The span store the app under test uses."""
    store = SpanStore.from_url(settings.store_url)
    yield store
    store.close()


@pytest.fixture
def app(settings: Settings, store: SpanStore):
    """The Flask app over the test store."""
    return create_app(settings, store=store)


@pytest.fixture
def client(app):
    """Flask's test client."""
    return app.test_client()


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app on a real loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def tracer_provider_factory(live_server: str) -> Iterator[Callable]:
    """Build real SDK tracer providers exporting OTLP/HTTP protobuf to ``live_server``."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    providers = []

    def make(service: str, **resource_attrs: object) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({"service.name": service, **resource_attrs}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{live_server}/v1/traces")))
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.shutdown()


@pytest.fixture
def load_trace() -> Callable[[str], bytes]:
    """The bytes of ``tests/fixtures/traces/<name>.json`` (an OTLP/JSON request)."""

    def load(name: str) -> bytes:
        return (FIXTURES / "traces" / f"{name}.json").read_bytes()

    return load


def otlp_json_example() -> bytes:
    """The OTLP specification's own JSON example request (see ``tests/fixtures/otlp/SOURCE.md``)."""
    return (FIXTURES / "otlp" / "example-trace.json").read_bytes()


def jaeger_get(client, path: str, status: int = 200) -> dict:
    """GET a JSON API path through the test client and check the status."""
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)
    return json.loads(response.get_data())
