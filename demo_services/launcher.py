"""Start, watch and stop everything ``spyglass demo`` runs.

``Demo`` starts Spyglass and the demo services as child processes on loopback ports,
each service with its own SQLite file, waits until every one is healthy and registered,
restarts a child that crashes, stops and starts an instance on request (through its
control endpoint, :mod:`demo_services.process_control`; an instance stopped that way is
not restarted), and on ``stop()`` terminates every child so no process or port is left
behind. ``run_demo`` wraps it for the command line; ``python -m
demo_services.launcher`` runs it standalone.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import requests

from demo_services.process_control import (
    DOWN,
    RUNNING,
    STOPPED,
    DemoStopping,
    ProcessControl,
    StartTimeout,
    UnknownInstance,
)
from demo_services.protocol import (
    CONTROL_TOKEN_FILE,
    CONTROL_TOKEN_HEADER,
    DEMO_PASSWORD,
    JWT_KEY_VARIABLE,
    LOGIN_PATH,
    AccessToken,
    log_in,
)
from demo_services.traffic import TrafficGenerator

AUTH_TOKEN_VARIABLE = "SPYGLASS_AUTH_TOKEN"
TOKEN_HOLDERS = ("gateway", "users")
"""The children that get the token key: users signs with it, the gateway verifies."""
TRAFFIC_USER = "barbara"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
RESTART_BACKOFF_S = 0.5
RESTART_BACKOFF_MAX_S = 10.0
INSTANCE_START_TIMEOUT_S = 30.0
LAUNCHER_PORT_OFFSET = 9
"""The launcher's control endpoint listens on ``base_port`` plus this."""
# name, module, port offset from base_port, instance id
SERVICES: list[tuple[str, str, int, str]] = [
    ("gateway", "demo_services.gateway", 0, ""),
    ("registry", "demo_services.registry", 1, ""),
    ("users", "demo_services.users", 2, ""),
    ("orders", "demo_services.orders", 3, ""),
    ("inventory-1", "demo_services.inventory", 4, "inventory-1"),
    ("inventory-2", "demo_services.inventory", 5, "inventory-2"),
    ("payment", "demo_services.payment", 6, ""),
    ("shipping", "demo_services.shipping", 7, ""),
    ("notifications", "demo_services.notifications", 8, ""),
]
# name, port offset from base_port of its gRPC server
GRPC_SERVERS: dict[str, int] = {"users": 10}
WHAT_TO_TRY = """\
What to try:
  log in (users ada, alan, grace, edsger, barbara; password {password}) and keep the token:
  TOKEN=$(curl -s -H 'Content-Type: application/json' -d '{{"username": "ada", "password": "{password}"}}' \\
          {gateway}{login} | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -H "Authorization: Bearer $TOKEN" {gateway}/api/products
  curl -H "Authorization: Bearer $TOKEN" {gateway}/api/users/1     (REST in, gRPC to users)
  curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d '{{"user_id": 1, "items": [{{"product_id": 1, "quantity": 1}}]}}' {gateway}/api/orders
  the same order with "card": "4000000000000002" -> payment declined, the saga compensates
  make payment fail and watch its breaker open (error_rate 0 heals it):
  curl -H "X-Spyglass-Control-Token: $(cat {control})" -H 'Content-Type: application/json' \\
       -d '{{"error_rate": 1}}' {payment}/control
  hold the next order's saga before its pivot, order, kill orders (the demo restarts it) and watch
  the new orders compensate it ({ui}/sagas; hold at "confirm_shipping" and it carries it forward):
  curl -H "X-Spyglass-Control-Token: $(cat {control})" -H 'Content-Type: application/json' \
       -d '{{"hold_at": "capture_payment"}}' {orders}/control
  kill -9 $(pgrep -f demo_services.orders)
  {ui}/chaos: set faults and run the named scenarios (spyglass chaos list / run NAME --wait)
  {ui}/traces, {ui}/services, {ui}/breakers, {ui}/sagas: watch the patterns react
Press Ctrl-C to stop everything."""


class DemoStartupError(RuntimeError):
    """A child did not become healthy (or exited) while the demo was starting."""


@dataclass
class _Child:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str
    restart: bool = True
    held: bool = False
    """Stopped on purpose through the control endpoint: not restarted until started."""
    restarts: int = 0
    restart_at: float | None = None
    process: subprocess.Popen | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill_group(self) -> None:
        """SIGKILL the child's process group: the child and whatever it started
        (Spyglass's workers and maintenance process)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Demo:
    """Spyglass plus every demo service, as a context manager.

    ``base_port=None`` picks free loopback ports (tests); otherwise the services use
    ``base_port`` .. ``base_port + 8`` in the order of ``SERVICES``, the launcher's
    control endpoint ``base_port + 9`` and users' gRPC server ``base_port + 10``.
    ``ui_addr`` and ``otlp_http_addr`` default to free ports too. ``spyglass_command`` replaces the
    command that starts Spyglass (its address arguments are appended); an empty list
    means Spyglass is already running at those addresses. ``env`` adds variables for
    every service (``SPYGLASS_DEMO_BREAKER_RESET_S`` and friends). ``settings_env`` holds
    ``SPYGLASS_*`` settings for Spyglass (``spyglass demo``'s options); the auth token among
    them goes to every service too, whose exporters must send it.
    """

    def __init__(
        self,
        *,
        data_dir: str | Path,
        ui_addr: str | None = None,
        otlp_http_addr: str | None = None,
        base_port: int | None = None,
        traffic: bool = False,
        rate: float = 1.0,
        env: Mapping[str, str] | None = None,
        spyglass_command: list[str] | None = None,
        settings_env: Mapping[str, str] | None = None,
        out: IO[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.services_dir = self.data_dir / "demo"
        self.logs_dir = self.services_dir / "logs"
        free = _free_ports(2 + (len(SERVICES) + 1 + len(GRPC_SERVERS) if base_port is None else 0))
        self.ui_addr = ui_addr or f"127.0.0.1:{free.pop()}"
        self.otlp_http_addr = otlp_http_addr or f"127.0.0.1:{free.pop()}"
        self.launcher_port = free.pop() if base_port is None else base_port + LAUNCHER_PORT_OFFSET
        self.ports = {
            name: (free.pop() if base_port is None else base_port + offset)
            for name, _module, offset, _instance in SERVICES
        }
        self.grpc_ports = {
            name: (free.pop() if base_port is None else base_port + offset) for name, offset in GRPC_SERVERS.items()
        }
        self.control_token = secrets.token_hex(16)
        # Signs and verifies access tokens for this run only; kept in memory and in the
        # environment of the gateway and users, never printed or written to a file.
        self.token_key = secrets.token_hex(32)
        self._traffic_enabled = traffic
        self._rate = rate
        self._extra_env = dict(env or {})
        self._settings_env = dict(settings_env or {})
        self._spyglass_command = [sys.executable, "-m", "app.cli"] if spyglass_command is None else spyglass_command
        self._out = out or sys.stdout
        self._children: dict[str, _Child] = {}
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()
        self._traffic: TrafficGenerator | None = None
        self._monitor: threading.Thread | None = None
        self._process_control: ProcessControl | None = None

    @property
    def ui_url(self) -> str:
        """Return the dashboard's base URL."""
        return f"http://{self.ui_addr}"

    @property
    def control_token_path(self) -> Path:
        """The file that keeps the control token (mode 0600), for scripts."""
        return self.services_dir / CONTROL_TOKEN_FILE

    @property
    def launcher_url(self) -> str:
        """The base URL of the launcher's control endpoint (stop / start an instance)."""
        return f"http://127.0.0.1:{self.launcher_port}"

    @property
    def gateway_url(self) -> str:
        """Return the gateway's base URL."""
        return self.url("gateway")

    @property
    def registry_url(self) -> str:
        """Return the registry's base URL."""
        return self.url("registry")

    def log_in(self, username: str = "ada") -> AccessToken:
        """Log ``username`` in at the gateway (password ``DEMO_PASSWORD``); return the token."""
        return log_in(self.gateway_url, username)

    def url(self, name: str) -> str:
        """Return the base URL of the service child ``name`` (e.g. ``inventory-2``)."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def __enter__(self) -> Demo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> float:
        """Start every child and wait until all are healthy; return the seconds it took.

        Raises ``DemoStartupError`` (after stopping what was started) when a child exits
        or is not ready within the start-up timeout.
        """
        began = time.monotonic()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._keep_control_token()
        self._create_children()
        self._say(f"Starting Spyglass and {len(SERVICES)} services in {self.data_dir} ...")
        try:
            self._process_control = ProcessControl(self, self.control_token, self.launcher_port)
            self._process_control.start()
            for child in self._children.values():
                child.start()
            self._wait_until_ready(began)
        except BaseException:  # whatever stops the start (Ctrl-C too) stops every child
            self.stop()
            raise
        elapsed = time.monotonic() - began
        self._say(f"All services healthy and registered in {elapsed:.1f} s.")
        self._monitor = threading.Thread(target=self._watch, name="demo-monitor", daemon=True)
        self._monitor.start()
        if self._traffic_enabled:
            self._traffic = TrafficGenerator(self.gateway_url, TRAFFIC_USER, self._rate)
            self._traffic.start()
            self._say(f"Traffic generator on: about {self._rate:g} request(s) per second.")
        return elapsed

    def stop(self) -> None:
        """Stop traffic, then terminate every child (Spyglass last); kill stragglers and
        whatever a child left of its process group."""
        with self._lifecycle:  # no restart can begin after this
            self._stopping.set()
        if self._process_control is not None:
            self._process_control.stop()
            self._process_control = None
        if self._traffic is not None:
            self._traffic.stop()
        ordered = [c for n, c in self._children.items() if n != "spyglass"]
        ordered += [c for n, c in self._children.items() if n == "spyglass"]
        for group in (ordered[:-1], ordered[-1:]):
            for child in group:
                if child.process is not None and child.process.poll() is None:
                    child.process.terminate()
            for child in group:
                if child.process is None:
                    continue
                try:
                    child.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    child.kill_group()
                    child.process.wait()
                child.kill_group()  # what it started and left behind
        for child in self._children.values():
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None

    def interrupt(self) -> None:
        """Make a ``start()`` in progress give up (safe to call from a signal handler)."""
        self._stopping.set()

    def pids(self) -> dict[str, int]:
        """Return the process id of each running child."""
        return {
            name: c.process.pid
            for name, c in self._children.items()
            if c.process is not None and c.process.poll() is None
        }

    def kill(self, name: str, *, restart: bool = False) -> None:
        """Kill child ``name`` with SIGKILL (a crash); restart it only if ``restart``."""
        child = self._children[name]
        # The monitor forgets an exited child that is not to be restarted (process None)
        # as soon as it sees it exit, so the process is held here before it is killed.
        process = child.process
        assert process is not None
        child.restart = restart
        process.kill()
        process.wait()

    def instance_states(self) -> list[dict[str, str]]:
        """Each instance the control endpoint may stop: its id, service and state
        (``running``, ``stopped`` on purpose, or ``down`` while a crashed one restarts)."""
        found = []
        for name, module, _offset, instance_id in SERVICES:
            child = self._children.get(name)
            if name == "registry" or child is None:
                continue
            alive = child.process is not None and child.process.poll() is None
            state = STOPPED if child.held else RUNNING if alive else DOWN
            found.append({"instance_id": instance_id or name, "service": module.rsplit(".", 1)[1], "state": state})
        return found

    def stop_instance(self, instance_id: str) -> None:
        """Stop an instance's process (SIGTERM, so it deregisters; SIGKILL after
        ``STOP_TIMEOUT_S``) and keep it stopped until ``start_instance``."""
        child = self._instance(instance_id)
        with self._lifecycle:
            if self._stopping.is_set():
                raise DemoStopping("the demo is stopping")
            child.held = True
            process = child.process
            if process is not None and process.poll() is None:
                process.terminate()
        if process is None:
            return
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill_group()
            process.wait()
        self._say(f"[demo] {child.name} stopped on request")

    def start_instance(self, instance_id: str) -> None:
        """Start an instance stopped by ``stop_instance`` and wait until it is healthy and
        registered; an instance that was not stopped is left as it is."""
        child = self._instance(instance_id)
        with self._lifecycle:
            if self._stopping.is_set():
                raise DemoStopping("the demo is stopping")
            if not child.held:
                return
            if child.log_file is not None:
                child.log_file.close()
            child.restarts = 0
            child.restart_at = None
            child.start()
            child.held = False  # only now: the monitor must never see the old, exited process unheld
        self._say(f"[demo] {child.name} started on request")
        deadline = time.monotonic() + INSTANCE_START_TIMEOUT_S
        while time.monotonic() < deadline and not self._stopping.is_set():
            if _is_healthy(child.health_url) and instance_id in _registered_healthy(self.registry_url):
                return
            time.sleep(0.1)
        raise StartTimeout(
            f"{instance_id} was started but is not healthy and registered after {INSTANCE_START_TIMEOUT_S:.0f} s"
        )

    def _instance(self, instance_id: str) -> _Child:
        for name, _module, _offset, instance in SERVICES:
            if (instance or name) == instance_id and name != "registry" and name in self._children:
                return self._children[name]
        raise UnknownInstance(instance_id)

    def control(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change failure injection of child ``name``; return its current settings."""
        response = requests.post(
            f"{self.url(name)}/control",
            json=changes,
            headers={CONTROL_TOKEN_HEADER: self.control_token},
            timeout=5,
        )
        response.raise_for_status()
        return response.json()

    def logs(self, lines: int = 30) -> str:
        """Return the last ``lines`` lines of every child's output, for failure messages."""
        parts = []
        for name, child in self._children.items():
            try:
                text = child.log_path.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                text = ["(no output)"]
            parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def _keep_control_token(self) -> None:
        """Write the control token to its file, readable by its owner only: scripts read it
        there, so it is never printed."""
        path = self.control_token_path
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.control_token)

    def _create_children(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        base_env = {
            **os.environ,
            **self._extra_env,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": python_path,
        }
        base_env.pop(JWT_KEY_VARIABLE, None)
        if AUTH_TOKEN_VARIABLE in self._settings_env:
            base_env[AUTH_TOKEN_VARIABLE] = self._settings_env[AUTH_TOKEN_VARIABLE]
        if self._spyglass_command:
            spyglass_dir = self.data_dir
            self._children["spyglass"] = _Child(
                "spyglass",
                [
                    *self._spyglass_command,
                    "serve",
                    "--ui-addr",
                    self.ui_addr,
                    "--otlp-http-addr",
                    self.otlp_http_addr,
                    "--data-dir",
                    str(spyglass_dir),
                ],
                # The dashboard's registry and chaos pages talk to the demo services.
                {
                    **base_env,
                    **self._settings_env,
                    "SPYGLASS_REGISTRY_URL": self.registry_url,
                    "SPYGLASS_LAUNCHER_URL": self.launcher_url,
                    "SPYGLASS_DEMO_CONTROL_TOKEN": self.control_token,
                },
                self.logs_dir / "spyglass.log",
                f"{self.ui_url}/health",
            )
        for name, module, _offset, instance_id in SERVICES:
            env = {
                **base_env,
                "SPYGLASS_OTLP_HTTP_ADDR": self.otlp_http_addr,
                "SPYGLASS_DEMO_PORT": str(self.ports[name]),
                "SPYGLASS_DEMO_INSTANCE_ID": instance_id,
                "SPYGLASS_DEMO_REGISTRY_URL": self.registry_url,
                "SPYGLASS_DEMO_DATA_DIR": str(self.services_dir),
                "SPYGLASS_DEMO_CONTROL_TOKEN": self.control_token,
            }
            if name in TOKEN_HOLDERS:
                env[JWT_KEY_VARIABLE] = self.token_key
            if name in self.grpc_ports:
                env["SPYGLASS_DEMO_GRPC_PORT"] = str(self.grpc_ports[name])
            self._children[name] = _Child(
                name,
                [sys.executable, "-m", module],
                env,
                self.logs_dir / f"{name}.log",
                f"{self.url(name)}/health",
            )

    def _wait_until_ready(self, began: float) -> None:
        deadline = began + STARTUP_TIMEOUT_S
        pending = dict(self._children)
        expected = {instance or name for name, _m, _o, instance in SERVICES if name != "registry"}
        registered: set[str] = set()
        while time.monotonic() < deadline:
            if self._stopping.is_set():
                raise DemoStartupError("interrupted while starting")
            for name, child in list(pending.items()):
                assert child.process is not None
                if child.process.poll() is not None:
                    raise DemoStartupError(
                        f"{name} exited with code {child.process.returncode} while starting\n" + self.logs()
                    )
                if _is_healthy(child.health_url):
                    del pending[name]
                    self._say(f"  {name:<14} healthy  ({time.monotonic() - began:4.1f} s)")
            if "registry" not in pending:
                registered = _registered_healthy(self.registry_url)
            if not pending and expected <= registered:
                return
            time.sleep(0.1)
        raise DemoStartupError(
            f"not ready after {STARTUP_TIMEOUT_S:.0f} s: unhealthy {sorted(pending)}, "
            f"unregistered {sorted(expected - registered)}\n" + self.logs()
        )

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for name, child in self._children.items():
                if child.held or child.process is None or child.process.poll() is None:
                    continue
                if self._stopping.is_set():
                    return
                if not child.restart:
                    self._say(f"[demo] {name} exited with code {child.process.returncode}; not restarting")
                    child.process = None
                    continue
                if child.restart_at is None:
                    # Back off when a child keeps crashing: 0.5 s, 1 s, 2 s ... up to 10 s.
                    delay = min(RESTART_BACKOFF_S * 2**child.restarts, RESTART_BACKOFF_MAX_S)
                    child.restart_at = now + (delay if child.restarts else 0.0)
                    self._say(
                        f"[demo] {name} exited with code {child.process.returncode}; "
                        f"restarting in {child.restart_at - now:.1f} s"
                    )
                if now >= child.restart_at:
                    with self._lifecycle:
                        if self._stopping.is_set():
                            return
                        if child.held or child.process is None or child.process.poll() is None:
                            # Stopped, or started, on request since it was seen exiting.
                            child.restart_at = None
                            continue
                        child.restarts += 1
                        child.restart_at = None
                        if child.log_file is not None:
                            child.log_file.close()
                        child.start()

    def _say(self, line: str) -> None:
        print(line, file=self._out, flush=True)


def run_demo(
    *,
    ui_addr: str,
    otlp_http_addr: str,
    data_dir: str,
    traffic: bool = True,
    rate: float = 1.0,
    base_port: int = 9000,
    open_browser: bool = False,
    settings_env: Mapping[str, str] | None = None,
) -> int:
    """Run the demo until Ctrl-C or SIGTERM; return the process exit code."""
    stop = threading.Event()
    demo = Demo(
        data_dir=data_dir,
        ui_addr=ui_addr,
        otlp_http_addr=otlp_http_addr,
        base_port=base_port,
        traffic=traffic,
        rate=rate,
        settings_env=settings_env,
    )

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        demo.interrupt()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            demo.start()
        except DemoStartupError as err:
            print(f"spyglass demo: {err}", file=sys.stderr)
            return 130 if stop.is_set() else 1
        print(f"\nDashboard: {demo.ui_url}\nGateway:   {demo.gateway_url} (log in at {LOGIN_PATH})\n")
        print(
            WHAT_TO_TRY.format(
                password=DEMO_PASSWORD,
                login=LOGIN_PATH,
                gateway=demo.gateway_url,
                ui=demo.ui_url,
                control=demo.control_token_path,
                payment=demo.url("payment"),
                orders=demo.url("orders"),
            ),
            flush=True,
        )
        if open_browser:
            open_dashboard(demo.ui_url)
        stop.wait()
        print("\nStopping the demo ...", flush=True)
    finally:
        demo.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Stopped.", flush=True)
    return 0


def open_dashboard(url: str, out: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Open ``url`` in a browser; when none can be opened, print one line saying where to go.

    On Linux without ``DISPLAY`` or ``WAYLAND_DISPLAY`` no browser is tried (a text-mode
    browser would take over the terminal the demo reports in). Returns whether one opened.
    """
    environ = os.environ if environ is None else environ
    headless = sys.platform.startswith("linux") and not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    opened = False
    if not headless:
        try:
            opened = webbrowser.open(url)
        except webbrowser.Error:
            opened = False
    if not opened:
        why = "no display here" if headless else "no browser could be opened"
        print(f"Open {url} in a browser ({why}).", file=out or sys.stdout, flush=True)
    return opened


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _is_healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def _registered_healthy(registry_url: str) -> set[str]:
    try:
        response = requests.get(f"{registry_url}/instances", timeout=0.5)
    except requests.RequestException:
        return set()
    if response.status_code != 200:
        return set()
    return {i["instance_id"] for i in response.json()["instances"] if i["healthy"]}


def main(argv: list[str] | None = None) -> int:
    """Run the demo standalone: ``python -m demo_services.launcher``."""
    parser = argparse.ArgumentParser(description="Run Spyglass with the demo services.")
    parser.add_argument("--ui-addr", default=os.environ.get("SPYGLASS_UI_ADDR", "127.0.0.1:8080"))
    parser.add_argument("--otlp-http-addr", default=os.environ.get("SPYGLASS_OTLP_HTTP_ADDR", "127.0.0.1:4318"))
    parser.add_argument("--data-dir", default=os.environ.get("SPYGLASS_DATA_DIR", "./data"))
    parser.add_argument("--no-traffic", action="store_true", help="do not generate traffic")
    parser.add_argument("--rate", type=float, default=1.0, help="traffic, requests per second")
    parser.add_argument("--base-port", type=int, default=9000)
    parser.add_argument("--open-browser", action="store_true")
    args = parser.parse_args(argv)
    return run_demo(
        ui_addr=args.ui_addr,
        otlp_http_addr=args.otlp_http_addr,
        data_dir=args.data_dir,
        traffic=not args.no_traffic,
        rate=args.rate,
        base_port=args.base_port,
        open_browser=args.open_browser,
    )


if __name__ == "__main__":
    raise SystemExit(main())
