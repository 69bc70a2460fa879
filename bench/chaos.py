"""Measure the chaos lab: each scenario's run time (start to verdict) with the demo's
default settings, and the response time (over loopback) of /chaos and of each result page.

Starts Spyglass and every demo service on free loopback ports (no background traffic),
runs each scenario once through the JSON API with the control token, requesting its result
page ``PAGE_REQUESTS`` times right after (with the RED of each affected service), then
/chaos, and prints the median and the slowest of each. Exits 1 when a scenario's
hypothesis does not hold. Run: ``python bench/chaos.py``.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo_services.launcher import Demo  # noqa: E402
from demo_services.protocol import CONTROL_TOKEN_HEADER  # noqa: E402

PAGE_REQUESTS = 20
RUN_LIMIT_S = 180.0


def run(demo: Demo, name: str) -> tuple[float, dict]:
    """Run scenario ``name``; return its wall time and the finished experiment."""
    began = time.perf_counter()
    started = requests.post(
        f"{demo.ui_url}/api/v1/experiments",
        json={"scenario": name},
        headers={CONTROL_TOKEN_HEADER: demo.control_token},
        timeout=10,
    )
    started.raise_for_status()
    url = f"{demo.ui_url}/api/v1/experiments/{started.json()['id']}"
    deadline = time.monotonic() + RUN_LIMIT_S
    while time.monotonic() < deadline:
        result = requests.get(url, timeout=10).json()
        if result["status"] == "done":
            return time.perf_counter() - began, result
        time.sleep(0.2)
    raise RuntimeError(f"{name} gave no verdict in {RUN_LIMIT_S:.0f} s")


def page_times(url: str) -> list[float]:
    """Milliseconds of ``PAGE_REQUESTS`` sequential GETs of ``url``."""
    times = []
    for _ in range(PAGE_REQUESTS):
        began = time.perf_counter()
        response = requests.get(url, timeout=10)
        times.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
    return times


def main() -> int:
    """Start the demo, run every scenario, time the pages; return the exit code."""
    failed = 0
    with tempfile.TemporaryDirectory() as data_dir, Demo(data_dir=data_dir, out=io.StringIO()) as demo:
        names = [s["name"] for s in requests.get(f"{demo.ui_url}/api/v1/scenarios", timeout=10).json()["scenarios"]]
        pages = []
        for name in names:
            took, result = run(demo, name)
            failed += result["verdict"] != "passed"
            services = ", ".join(result["findings"].get("services", []))
            print(f"{name:<26} {took:6.1f} s  {result['verdict']}  ({len(result['trace_ids'])} traces; {services})")
            pages.append((f"result page {name}", page_times(result["url"])))
        pages.append(("/chaos", page_times(f"{demo.ui_url}/chaos")))
        for label, times in pages:
            print(f"{label:<40} median {statistics.median(times):6.1f} ms, slowest {max(times):6.1f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
