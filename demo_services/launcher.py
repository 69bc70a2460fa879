"""Start, watch and stop everything ``spyglass demo`` runs.

``Demo`` starts Spyglass and the demo services as child processes on loopback ports (the
plan: :mod:`demo_services.demo_plan`), each service with its own SQLite file, waits until
every one is healthy and registered, restarts a child that crashes, stops and starts an
instance on request (through its control endpoint, :mod:`demo_services.process_control`;
an instance stopped that way is not restarted), and on ``stop()`` terminates every child
so no process or port is left behind (the supervision: :mod:`demo_services.supervisor`).
:mod:`demo_services.demo_console` runs it for the command line; ``python -m
demo_services.launcher`` runs it standalone.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import requests

from demo_services.demo_plan import SERVICES, Ports, plan_children
from demo_services.process_control import (
    DOWN,
    RUNNING,
    STOPPED,
    ProcessControl,
    StartTimeout,
    UnknownInstance,
)
from demo_services.protocol import CONTROL_TOKEN_FILE, CONTROL_TOKEN_HEADER, AccessToken, log_in
from demo_services.supervisor import Child, Supervisor
from demo_services.traffic import TrafficGenerator

TRAFFIC_USER = "barbara"
STARTUP_TIMEOUT_S = 60.0
INSTANCE_START_TIMEOUT_S = 30.0


class DemoStartupError(RuntimeError):
    """A child did not become healthy (or exited) while the demo was starting."""


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
        self._ports = Ports.assign(ui_addr, otlp_http_addr, base_port)
        self.ui_addr = self._ports.ui_addr
        self.otlp_http_addr = self._ports.otlp_http_addr
        self.launcher_port = self._ports.launcher_port
        self.ports = self._ports.services
        self.grpc_ports = self._ports.grpc
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
        self._supervisor = Supervisor({}, self._say)
        self._traffic: TrafficGenerator | None = None
        self._process_control: ProcessControl | None = None

    @property
    def ui_url(self) -> str:
        """Return the dashboard's base URL."""
        return self._ports.ui_url

    @property
    def control_token_path(self) -> Path:
        """The file that keeps the control token (mode 0600), for scripts."""
        return self.services_dir / CONTROL_TOKEN_FILE

    @property
    def launcher_url(self) -> str:
        """The base URL of the launcher's control endpoint (stop / start an instance)."""
        return self._ports.launcher_url

    @property
    def gateway_url(self) -> str:
        """Return the gateway's base URL."""
        return self.url("gateway")

    @property
    def registry_url(self) -> str:
        """Return the registry's base URL."""
        return self._ports.registry_url

    def log_in(self, username: str = "ada") -> AccessToken:
        """Log ``username`` in at the gateway (password ``DEMO_PASSWORD``); return the token."""
        return log_in(self.gateway_url, username)

    def url(self, name: str) -> str:
        """Return the base URL of the service child ``name`` (e.g. ``inventory-2``)."""
        return self._ports.url(name)

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
        self._supervisor.children.update(
            plan_children(
                self._ports,
                data_dir=self.data_dir,
                control_token=self.control_token,
                token_key=self.token_key,
                extra_env=self._extra_env,
                settings_env=self._settings_env,
                spyglass_command=self._spyglass_command,
            )
        )
        self._say(f"Starting Spyglass and {len(SERVICES)} services in {self.data_dir} ...")
        try:
            try:
                self._process_control = ProcessControl(self, self.control_token, self.launcher_port)
            except OSError as err:  # the port is taken: say so in one line, not a traceback
                raise DemoStartupError(
                    f"the launcher's control endpoint cannot listen on 127.0.0.1:{self.launcher_port}: "
                    f"{os.strerror(err.errno) if err.errno else err}"
                ) from err
            self._process_control.start()
            self._supervisor.start_all()
            self._wait_until_ready(began)
        except BaseException:  # whatever stops the start (Ctrl-C too) stops every child
            self.stop()
            raise
        elapsed = time.monotonic() - began
        self._say(f"All services healthy and registered in {elapsed:.1f} s.")
        self._supervisor.watch()
        if self._traffic_enabled:
            self._traffic = TrafficGenerator(self.gateway_url, TRAFFIC_USER, self._rate)
            self._traffic.start()
            self._say(f"Traffic generator on: about {self._rate:g} request(s) per second.")
        return elapsed

    def stop(self) -> None:
        """Stop traffic, then terminate every child (Spyglass last); kill stragglers and
        whatever a child left of its process group."""
        self._supervisor.begin_stopping()  # no restart can begin after this
        if self._process_control is not None:
            self._process_control.stop()
            self._process_control = None
        if self._traffic is not None:
            self._traffic.stop()
        self._supervisor.stop_all()

    def interrupt(self) -> None:
        """Make a ``start()`` in progress give up (safe to call from a signal handler)."""
        self._supervisor.interrupt()

    def pids(self) -> dict[str, int]:
        """Return the process id of each running child."""
        return self._supervisor.pids()

    def kill(self, name: str, *, restart: bool = False) -> None:
        """Kill child ``name`` with SIGKILL (a crash); restart it only if ``restart``."""
        self._supervisor.kill(name, restart=restart)

    def instance_states(self) -> list[dict[str, str]]:
        """Each instance the control endpoint may stop: its id, service and state
        (``running``, ``stopped`` on purpose, or ``down`` while a crashed one restarts)."""
        found = []
        for name, module, _offset, instance_id in SERVICES:
            child = self._supervisor.children.get(name)
            if name == "registry" or child is None:
                continue
            state = STOPPED if child.held else RUNNING if child.alive() is not None else DOWN
            found.append({"instance_id": instance_id or name, "service": module.rsplit(".", 1)[1], "state": state})
        return found

    def stop_instance(self, instance_id: str) -> None:
        """Stop an instance's process (SIGTERM, so it deregisters; SIGKILL after a few
        seconds) and keep it stopped until ``start_instance``."""
        self._supervisor.hold(self._instance(instance_id))

    def start_instance(self, instance_id: str) -> None:
        """Start an instance stopped by ``stop_instance`` and wait until it is healthy and
        registered; an instance that was not stopped is left as it is."""
        child = self._instance(instance_id)
        if not self._supervisor.release(child):
            return
        deadline = time.monotonic() + INSTANCE_START_TIMEOUT_S
        while time.monotonic() < deadline and not self._supervisor.stopping:
            if _is_healthy(child.health_url) and instance_id in _registered_healthy(self.registry_url):
                return
            time.sleep(0.1)
        raise StartTimeout(
            f"{instance_id} was started but is not healthy and registered after {INSTANCE_START_TIMEOUT_S:.0f} s"
        )

    def _instance(self, instance_id: str) -> Child:
        children = self._supervisor.children
        for name, _module, _offset, instance in SERVICES:
            if (instance or name) == instance_id and name != "registry" and name in children:
                return children[name]
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
        for name, child in self._supervisor.children.items():
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

    def _wait_until_ready(self, began: float) -> None:
        deadline = began + STARTUP_TIMEOUT_S
        pending = dict(self._supervisor.children)
        expected = {instance or name for name, _m, _o, instance in SERVICES if name != "registry"}
        registered: set[str] = set()
        while time.monotonic() < deadline:
            if self._supervisor.stopping:
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

    def _say(self, line: str) -> None:
        print(line, file=self._out, flush=True)


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


if __name__ == "__main__":
    from demo_services.demo_console import main

    raise SystemExit(main())
