"""The demo's start-up plan: which services it runs, the loopback ports each listens on,
and the command and settings (environment) each child process is started with."""

from __future__ import annotations

import os
import random
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from demo_services.protocol import JWT_KEY_VARIABLE
from demo_services.supervisor import Child

AUTH_TOKEN_VARIABLE = "SPYGLASS_AUTH_TOKEN"
TOKEN_HOLDERS = ("gateway", "users")
"""The children that get the token key: users signs with it, the gateway verifies."""
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
FREE_PORTS_FROM = 10000
"""Free ports are picked from here up to the ephemeral range (above the fixed ports of
``spyglass demo``, Spyglass and PostgreSQL)."""


@dataclass(frozen=True)
class Ports:
    """Where Spyglass, each service, users' gRPC server and the launcher's control
    endpoint listen (all on loopback)."""

    ui_addr: str
    otlp_http_addr: str
    launcher_port: int
    services: dict[str, int]
    grpc: dict[str, int]

    @classmethod
    def assign(cls, ui_addr: str | None, otlp_http_addr: str | None, base_port: int | None) -> Ports:
        """``base_port=None`` picks free loopback ports; otherwise the services use
        ``base_port`` .. ``base_port + 8`` in the order of ``SERVICES``, the control endpoint
        ``base_port + 9`` and users' gRPC server ``base_port + 10``. ``ui_addr`` and
        ``otlp_http_addr`` default to free ports."""
        free = free_ports(2 + (len(SERVICES) + 1 + len(GRPC_SERVERS) if base_port is None else 0))
        return cls(
            ui_addr=ui_addr or f"127.0.0.1:{free.pop()}",
            otlp_http_addr=otlp_http_addr or f"127.0.0.1:{free.pop()}",
            launcher_port=free.pop() if base_port is None else base_port + LAUNCHER_PORT_OFFSET,
            services={
                name: (free.pop() if base_port is None else base_port + offset)
                for name, _module, offset, _instance in SERVICES
            },
            grpc={
                name: (free.pop() if base_port is None else base_port + offset) for name, offset in GRPC_SERVERS.items()
            },
        )

    def url(self, name: str) -> str:
        """The base URL of the service child ``name`` (e.g. ``inventory-2``)."""
        return f"http://127.0.0.1:{self.services[name]}"

    @property
    def ui_url(self) -> str:
        """The dashboard's base URL."""
        return f"http://{self.ui_addr}"

    @property
    def registry_url(self) -> str:
        """The registry's base URL."""
        return self.url("registry")

    @property
    def launcher_url(self) -> str:
        """The base URL of the launcher's control endpoint."""
        return f"http://127.0.0.1:{self.launcher_port}"


def plan_children(
    ports: Ports,
    *,
    data_dir: Path,
    control_token: str,
    token_key: str,
    extra_env: Mapping[str, str],
    settings_env: Mapping[str, str],
    spyglass_command: list[str],
) -> dict[str, Child]:
    """Every child of the demo, by name: Spyglass (unless ``spyglass_command`` is empty),
    then the services of ``SERVICES``, each with its command, environment, log file under
    ``data_dir/demo/logs`` and health URL."""
    services_dir = data_dir / "demo"
    logs_dir = services_dir / "logs"
    root = str(Path(__file__).resolve().parent.parent)
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    base_env = {
        **os.environ,
        **extra_env,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": python_path,
    }
    base_env.pop(JWT_KEY_VARIABLE, None)
    if AUTH_TOKEN_VARIABLE in settings_env:
        base_env[AUTH_TOKEN_VARIABLE] = settings_env[AUTH_TOKEN_VARIABLE]
    children: dict[str, Child] = {}
    if spyglass_command:
        children["spyglass"] = Child(
            "spyglass",
            [
                *spyglass_command,
                "serve",
                "--ui-addr",
                ports.ui_addr,
                "--otlp-http-addr",
                ports.otlp_http_addr,
                "--data-dir",
                str(data_dir),
            ],
            # The dashboard's registry and chaos pages talk to the demo services.
            {
                **base_env,
                **settings_env,
                "SPYGLASS_REGISTRY_URL": ports.registry_url,
                "SPYGLASS_LAUNCHER_URL": ports.launcher_url,
                "SPYGLASS_DEMO_CONTROL_TOKEN": control_token,
            },
            logs_dir / "spyglass.log",
            f"{ports.ui_url}/health",
        )
    for name, module, _offset, instance_id in SERVICES:
        env = {
            **base_env,
            "SPYGLASS_OTLP_HTTP_ADDR": ports.otlp_http_addr,
            "SPYGLASS_DEMO_PORT": str(ports.services[name]),
            "SPYGLASS_DEMO_INSTANCE_ID": instance_id,
            "SPYGLASS_DEMO_REGISTRY_URL": ports.registry_url,
            "SPYGLASS_DEMO_DATA_DIR": str(services_dir),
            "SPYGLASS_DEMO_CONTROL_TOKEN": control_token,
        }
        if name in TOKEN_HOLDERS:
            env[JWT_KEY_VARIABLE] = token_key
        if name in ports.grpc:
            env["SPYGLASS_DEMO_GRPC_PORT"] = str(ports.grpc[name])
        children[name] = Child(
            name, [sys.executable, "-m", module], env, logs_dir / f"{name}.log", f"{ports.url(name)}/health"
        )
    return children


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (all held at once
    while they are picked, so none is picked twice).

    They are drawn at random from below the kernel's ephemeral range (from
    ``FREE_PORTS_FROM``): the kernel gives ports in that range to every ``bind`` to port 0
    and every outgoing connection on the machine, any of which could otherwise take one
    of them in the seconds between this pick and the demo's child binding it."""
    low = ephemeral_low()
    if low - FREE_PORTS_FROM < 1000:  # hardly any room below the range: let the kernel pick
        return _kernel_picked_ports(count)
    rng = random.SystemRandom()
    sockets: list[socket.socket] = []
    try:
        tries = count * 50
        while len(sockets) < count:
            if tries == 0:
                raise OSError(f"no {count} free loopback ports below {low}")
            tries -= 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", rng.randrange(FREE_PORTS_FROM, low)))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _kernel_picked_ports(count: int) -> list[int]:
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
