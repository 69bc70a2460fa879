"""Measure the demo's start-up time and memory against its budget (15 s, 800 MB).

Starts Spyglass and every demo service on free loopback ports, reports the time until
all are healthy and registered, sends a little traffic, then sums the resident memory
(VmRSS from /proc) of the whole process tree, this launcher process included. Exits 1
when a budget is exceeded. Run: ``python bench/demo_startup.py``.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo_services.launcher import TRAFFIC_USER, Demo  # noqa: E402
from demo_services.traffic import TrafficGenerator  # noqa: E402

STARTUP_BUDGET_S = 15.0
MEMORY_BUDGET_MB = 800.0
WARM_UP_REQUESTS = 40


def rss_kib(pid: int) -> int:
    """Return the resident set size of ``pid`` in KiB (0 if it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def process_tree(root: int) -> list[int]:
    """Return ``root`` and all its descendants, found through /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # The command name may contain spaces; fields after its closing parenthesis are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def main() -> int:
    """Start the demo, measure, stop it, print the results; return the exit code."""
    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as data_dir:
        demo = Demo(data_dir=data_dir, out=io.StringIO())
        startup_s = demo.start()
        try:
            traffic = TrafficGenerator(demo.gateway_url, TRAFFIC_USER, rate=0)
            for _ in range(WARM_UP_REQUESTS):
                traffic.send_one()
            names = {pid: name for name, pid in demo.pids().items()}
            tree = process_tree(os.getpid())
            per_process = {pid: rss_kib(pid) for pid in tree}
        finally:
            demo.stop()
    total_mb = sum(per_process.values()) / 1024
    print(f"start-up to all healthy and registered: {startup_s:.2f} s (budget {STARTUP_BUDGET_S:.0f} s)")
    print(f"memory, summed RSS of {len(tree)} processes: {total_mb:.0f} MB (budget {MEMORY_BUDGET_MB:.0f} MB)")
    for pid, kib in sorted(per_process.items(), key=lambda item: -item[1]):
        label = "launcher" if pid == os.getpid() else names.get(pid, "other")
        print(f"  {label:<14} pid {pid:<7} {kib / 1024:6.1f} MB")
    over = startup_s > STARTUP_BUDGET_S or total_mb > MEMORY_BUDGET_MB
    print("over budget" if over else "within budget")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
