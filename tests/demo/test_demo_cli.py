"""`spyglass demo` as a user runs it: its Spyglass options reach the Spyglass it starts,
an option it cannot honour is refused, and --open says where to go when no browser opens."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from demo_services.protocol import log_in
from tests.helpers import ROOT, wait_until

TOKEN = "forwarded-secret"


def _ephemeral_low() -> int:
    """The first port of the range the kernel hands to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_block(count: int) -> int:
    """A first port such that ``count`` consecutive loopback ports were free a moment ago.

    The block lies below the ephemeral range: a port there is never given to an outgoing
    connection (and connect() takes even ports, so half of any block in that range), which
    any client on the machine might otherwise hold between this check and the demo's
    children binding it."""
    low = _ephemeral_low()
    top = low - count if low - count > 20000 else 65536 - count
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, top)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError(f"no {count} consecutive free ports")


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C the demo (it stops its children), then make sure it is gone."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.demo
def test_demo_forwards_spyglass_options_and_says_where_to_go_without_a_display(tmp_path: Path) -> None:
    # One block for all: the demo's eleven ports, then the dashboard's and OTLP's, so none
    # of them can be picked twice.
    base_port = _free_block(13)
    ui_port, otlp_port = base_port + 11, base_port + 12
    ui, otlp = f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{otlp_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SPYGLASS_AUTH_TOKEN")}
    log = (tmp_path / "demo.log").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "app.cli", "demo", "--no-traffic", "--open",
            "--base-port", str(base_port),
            "--ui-addr", f"127.0.0.1:{ui_port}",
            "--otlp-http-addr", f"127.0.0.1:{otlp_port}",
            "--data-dir", str(tmp_path / "data"),
            "--auth-token", TOKEN,
            "--max-body-mb", "1",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def output() -> str:
        log.flush()
        return (tmp_path / "demo.log").read_text()

    try:
        wait_until(
            lambda: proc.poll() is not None or "Press Ctrl-C" in output(),
            timeout=90,
            message=f"the demo to start\n{output()}",
        )
        assert proc.poll() is None, output()
        assert f"Open {ui} in a browser (no display here)." in output().splitlines()

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(f"{ui}/api/services", timeout=5).status_code == 401
        too_big = requests.post(
            f"{otlp}/v1/traces",
            data=b"\0" * (1024 * 1024 + 1),
            headers={**bearer, "Content-Type": "application/x-protobuf"},
            timeout=10,
        )
        assert too_big.status_code == 413, too_big.text
        # The services export with the forwarded token: their spans are stored.
        login = log_in(f"http://127.0.0.1:{base_port}", "grace")
        order = requests.get(
            f"http://127.0.0.1:{base_port}/api/products", headers={"Authorization": login.header}, timeout=10
        )
        assert order.status_code == 200, order.text

        def services() -> list[str]:
            data = requests.get(f"{ui}/api/services", headers=bearer, timeout=5).json()["data"]
            return data if "gateway" in data else []

        wait_until(services, timeout=30, interval=0.3, message=f"the gateway's spans\n{output()}")

        # The control token is kept in its file (owner only), never printed; with auth on,
        # `spyglass chaos` needs the bearer token as well.
        token_file = tmp_path / "data" / "demo" / "control-token"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert token_file.read_text() not in output() and str(token_file) in output()
        chaos = [sys.executable, "-m", "app.cli", "chaos", "run", "payment-declined", "--wait", "--ui-url", ui]
        chaos += ["--data-dir", str(tmp_path / "data")]
        refused = subprocess.run(chaos, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "bearer token is required" in refused.stderr
        ran = subprocess.run(
            chaos, cwd=ROOT, env={**env, "SPYGLASS_AUTH_TOKEN": TOKEN}, capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
    finally:
        _stop(proc)
        log.close()
    assert proc.returncode == 0
    assert "Stopped." in (tmp_path / "demo.log").read_text()


def test_demo_refuses_registry_url_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--registry-url", "http://127.0.0.1:1", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--registry-url cannot be used with `spyglass demo`: the demo runs its own registry" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo").exists()


def test_demo_says_in_one_line_when_its_control_port_is_taken(tmp_path: Path) -> None:
    base_port = _free_block(13)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base_port + 9))
        taken.listen()
        result = subprocess.run(
            [
                sys.executable, "-m", "app.cli", "demo", "--no-traffic",
                "--base-port", str(base_port),
                "--ui-addr", f"127.0.0.1:{base_port + 11}",
                "--otlp-http-addr", f"127.0.0.1:{base_port + 12}",
                "--data-dir", str(tmp_path),
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"spyglass demo: the launcher's control endpoint cannot listen on 127.0.0.1:{base_port + 9}: "
        "Address already in use"
    ]


_OPEN = (
    "import sys; from demo_services.demo_console import open_dashboard; "
    "print(open_dashboard(sys.argv[1]))"
)


@pytest.mark.parametrize(("exit_code", "opened"), [(1, False), (0, True)])
def test_open_says_where_to_go_when_the_browser_fails(tmp_path: Path, exit_code: int, opened: bool) -> None:
    """With a display, but the only browser there failing (webbrowser.open returns False)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    browser = bin_dir / "fakebrowser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {tmp_path / "asked"}\nexit {exit_code}\n')
    browser.chmod(0o755)
    url = "http://127.0.0.1:8080"
    result = subprocess.run(
        [sys.executable, "-c", _OPEN, url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        # Only the fake browser is on PATH, so webbrowser can find no other.
        env={"PATH": str(bin_dir), "DISPLAY": ":99", "BROWSER": "fakebrowser", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "asked").read_text().strip() == url
    lines = result.stdout.splitlines()
    if opened:
        assert lines == ["True"]
    else:
        assert lines == [f"Open {url} in a browser (no browser could be opened).", "False"]
