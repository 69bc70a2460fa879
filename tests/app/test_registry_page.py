"""The /registry page renders at once; its instances come in a fragment that waits for the registry."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from bs4 import BeautifulSoup

from app import create_app
from tests.helpers import ROOT, free_port, wait_until


def _html(client, path: str) -> tuple[BeautifulSoup, float]:
    began = time.monotonic()
    response = client.get(path)
    elapsed = time.monotonic() - began
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return BeautifulSoup(response.get_data(as_text=True), "html.parser"), elapsed


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung registry)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def registry_process(tmp_path: Path) -> Iterator[str]:
    """The demo registry as a real process on a free port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "SPYGLASS_DEMO_PORT": str(port),
        "SPYGLASS_DEMO_DATA_DIR": str(tmp_path / "registry"),
        "SPYGLASS_DEMO_REGISTRY_TTL_S": "600",
    }
    log = (tmp_path / "registry.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo_services.registry"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the registry exited with {proc.returncode}")
        try:
            return requests.get(f"{url}/health", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=30, message="the registry to answer /health")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_page_answers_at_once_with_the_registry_hung_and_the_fragment_says_so(settings, store, silent_registry):
    client = create_app(settings.replace(registry_url=silent_registry), store=store).test_client()
    page, elapsed = _html(client, "/registry?window=1h")
    assert elapsed < 1.0, f"the page waited {elapsed:.1f} s for the registry"
    loader = page.select_one("#registry [hx-get]")
    assert loader["hx-get"] == "/registry/instances?window=1h&ago=0"
    assert "load" in loader["hx-trigger"]
    assert silent_registry in loader.get_text()
    assert page.select_one(".registry-down") is None

    fragment, _ = _html(client, loader["hx-get"])
    down = fragment.select_one(".registry-down").get_text(" ", strip=True)
    assert down.startswith("Registry not reachable")
    assert f"{silent_registry}/instances" in down
    assert fragment.select_one("ul.observed") is not None


def test_fragment_lists_the_instances_of_a_real_registry(settings, store, registry_process):
    for instance_id, healthy_url in (("inventory-1", registry_process), ("inventory-2", "http://127.0.0.1:9")):
        response = requests.post(
            f"{registry_process}/register",
            json={"service": "inventory", "instance_id": instance_id, "url": healthy_url, "depends_on": ["users"]},
            timeout=5,
        )
        assert response.status_code == 201, response.text
    client = create_app(settings.replace(registry_url=registry_process), store=store).test_client()
    fragment, _ = _html(client, "/registry/instances?window=15m")
    assert fragment.select_one(".registry-down") is None
    rows = {
        tr.select("td")[1].get_text(): tr.select("td")[2].get_text() for tr in fragment.select("table.instances tr.instance")
    }
    assert rows == {"inventory-1": registry_process, "inventory-2": "http://127.0.0.1:9"}
    assert "inventory → users" in fragment.select_one("ul.declared").get_text()
