"""Listening beyond loopback needs SPYGLASS_AUTH_TOKEN or an explicit --insecure-no-auth.

The real command line in a subprocess: a refusal is one line on stderr and exit code 2,
before anything listens; with a token, or with the explicit flag, the server starts on
every address and answers there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app.settings import Settings, is_loopback
from tests.helpers import ServeProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
REFUSAL = "spyglass: refusing to listen beyond loopback without SPYGLASS_AUTH_TOKEN"


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPYGLASS_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args, "--data-dir", str(tmp_path / "data")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["serve", "--ui-addr", "0.0.0.0:{port}"], {}, "dashboard on 0.0.0.0:{port}"),
        (["serve", "--otlp-http-addr", "[::]:{port}"], {}, "OTLP/HTTP on [::]:{port}"),
        (["serve"], {"SPYGLASS_OTLP_HTTP_ADDR": "192.0.2.1:{port}"}, "OTLP/HTTP on 192.0.2.1:{port}"),
        (
            ["serve", "--otlp-grpc-enabled", "--otlp-grpc-addr", "0.0.0.0:{port}"],
            {},
            "OTLP/gRPC on 0.0.0.0:{port}",
        ),
        (["demo", "--no-traffic", "--ui-addr", "spyglass.example:{port}"], {}, "dashboard on spyglass.example:{port}"),
        (
            ["serve", "--ui-addr", "0.0.0.0:{port}", "--no-insecure-no-auth"],
            {"SPYGLASS_INSECURE_NO_AUTH": "true"},
            "dashboard on 0.0.0.0:{port}",
        ),
    ],
)
def test_a_listener_beyond_loopback_without_a_token_is_refused_in_one_line(tmp_path, args, env, named):
    port = free_port()
    result = _run(
        [a.format(port=port) for a in args], tmp_path, **{k: v.format(port=port) for k, v in env.items()}
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(REFUSAL)
    assert named.format(port=port) in lines[0]
    assert "--insecure-no-auth" in lines[0]
    assert not (tmp_path / "data").exists(), "nothing was started or created"


def _bound_to_every_interface(server: ServeProcess) -> None:
    """Both listeners were bound on 0.0.0.0, as the process printed."""
    assert f"dashboard http://0.0.0.0:{server.ui_port}/" in server.output()
    assert f"OTLP/HTTP http://0.0.0.0:{server.otlp_port}/v1/traces" in server.output()


def test_with_a_token_every_listener_may_bind_beyond_loopback(tmp_path):
    server = ServeProcess(tmp_path / "data", env={"SPYGLASS_AUTH_TOKEN": "s3cret-token"}, bind_host="0.0.0.0")
    try:
        _bound_to_every_interface(server)
        assert requests.get(server.ui + "/api/services", timeout=10).status_code == 401
        answer = requests.get(server.ui + "/api/services", headers={"Authorization": "Bearer s3cret-token"}, timeout=10)
        assert answer.status_code == 200, answer.text
        refused = requests.post(
            server.otlp + "/v1/traces", data=b"{}", headers={"Content-Type": "application/json"}, timeout=10
        )
        assert refused.status_code == 401
    finally:
        server.stop()


def test_insecure_no_auth_is_the_explicit_way_to_listen_open(tmp_path):
    server = ServeProcess(tmp_path / "data", "--insecure-no-auth", bind_host="0.0.0.0")
    try:
        _bound_to_every_interface(server)
        assert requests.get(server.ui + "/api/services", timeout=10).status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("localhost", True), ("LOCALHOST", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("spyglass", False), ("", False)],
)
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_the_grpc_address_counts_only_when_grpc_is_on():
    settings = Settings(otlp_grpc_addr="0.0.0.0:4317")
    assert settings.exposed_without_auth() == []
    assert settings.replace(otlp_grpc_enabled=True).exposed_without_auth() == ["OTLP/gRPC on 0.0.0.0:4317"]
    assert settings.replace(otlp_grpc_enabled=True, auth_token="t").exposed_without_auth() == []
