"""A demo service binds the address it is told and registers the host others reach it by
(what a container needs: bind 0.0.0.0, register as its container's name)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.helpers import free_port, start_process, stop_process, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_service_registers_its_advertised_host_and_binds_its_host(tmp_path):
    registry_port, users_port, grpc_port = free_port(), free_port(), free_port()
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPYGLASS_")},
        "PYTHONPATH": str(ROOT),
        "SPYGLASS_OTLP_HTTP_ADDR": f"127.0.0.1:{free_port()}",  # nothing listens: spans are dropped
        "SPYGLASS_DEMO_REGISTRY_URL": f"http://127.0.0.1:{registry_port}",
        "SPYGLASS_DEMO_DATA_DIR": str(tmp_path),
    }
    log = (tmp_path / "out.log").open("w")
    processes = []
    try:
        processes.append(
            start_process(
                [sys.executable, "-m", "demo_services.registry"],
                env={**base, "SPYGLASS_DEMO_PORT": str(registry_port)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        env = {
            **base,
            "SPYGLASS_DEMO_PORT": str(users_port),
            "SPYGLASS_DEMO_GRPC_PORT": str(grpc_port),
            "SPYGLASS_DEMO_HOST": "0.0.0.0",
            "SPYGLASS_DEMO_ADVERTISED_HOST": "localhost",
            "SPYGLASS_DEMO_JWT_KEY": "0" * 64,
        }
        processes.append(
            start_process([sys.executable, "-m", "demo_services.users"], env=env, stdout=log, stderr=subprocess.STDOUT)
        )

        def registered() -> dict | None:
            try:
                answer = requests.get(f"http://127.0.0.1:{registry_port}/instances", timeout=1)
            except requests.RequestException:
                return None
            found = [i for i in answer.json()["instances"] if i["instance_id"] == "users" and i["healthy"]]
            return found[0] if found else None

        instance = wait_until(registered, timeout=30, message=lambda: (tmp_path / "out.log").read_text()[-3000:])
        assert instance["url"] == f"http://localhost:{users_port}"
        assert instance["grpc_url"] == f"localhost:{grpc_port}"
        # Bound on every interface: it answers on loopback by name and by address.
        assert requests.get(f"http://127.0.0.1:{users_port}/health", timeout=5).ok
        assert requests.get(f"http://localhost:{users_port}/health", timeout=5).ok
    finally:
        for process in reversed(processes):
            stop_process(process)
        log.close()
