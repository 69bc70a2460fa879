"""Ingest benchmark: sustained spans/s and request latency into `spyglass serve`, against a
decode-to-rows-and-discard receiver run with the same gunicorn set-up in the same run.

Posts pre-encoded 512-span OTLP batches (10 attributes a span, 5 services, 16-span traces)
over loopback from several sender threads for a bounded time, then prints spans/s,
request p50/p99, the ratio to the baseline, how soon an acknowledged trace is readable,
and the largest size SQLite's write-ahead log reached.

    python bench/ingest.py                      # 20 s per phase
    python bench/ingest.py --seconds 60 --workers 2
    python bench/ingest.py --target-spans 10000000 --phases full   # grow the store to 10M spans
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import SPANS_PER_BATCH, Batches  # noqa: E402
from tests.helpers import ServeProcess  # noqa: E402


def start_server(kind: str, data_dir: Path, workers: int) -> ServeProcess:
    """`spyglass serve` with the full write path, or the discard baseline, on free loopback
    ports; retention is off, so the store keeps every span sent."""
    if kind == "full":
        return ServeProcess(data_dir, "--workers", str(workers), "--max-spans", "0", "--retention-hours", "0")
    return ServeProcess(data_dir, str(workers), program=[sys.executable, str(ROOT / "bench" / "discard_server.py")])


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc), so
    that a phase's figure is also given per span, which a busy machine disturbs less
    than spans/s. Zero where /proc is not available."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, seconds in times.items():
        p = pid
        while p and p != root:
            p = parents.get(p, 0)
        if p == root:
            total += seconds
    return total


def run_phase(
    name: str,
    server: ServeProcess,
    data_dir: Path,
    encoding: str,
    seconds: float,
    senders: int,
    target_spans: int | None,
    check_reads: bool,
) -> dict:
    batches = Batches(time.time_ns(), encoding)
    url = f"{server.otlp}/v1/traces"
    latencies: list[float] = []
    read_delays: list[float] = []
    errors: list[str] = []
    sent = [0]
    lock = threading.Lock()
    stop = threading.Event()
    wal = data_dir / "spyglass.db-wal"
    wal_max = [0]

    def sender(n: int) -> None:
        session = requests.Session()
        headers = {"Content-Type": batches.content_type}
        i = 0
        while not stop.is_set():
            body, trace_id = batches.next()
            t0 = time.perf_counter()
            r = session.post(url, data=body, headers=headers, timeout=60)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                with lock:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(float(r.headers.get("Retry-After", "0.1")))
                continue
            with lock:
                latencies.append(dt)
                sent[0] += SPANS_PER_BATCH
            i += 1
            if check_reads and n == 0 and i % 20 == 0:
                t1 = time.perf_counter()
                while requests.get(f"{server.ui}/api/traces/{trace_id}", timeout=10).status_code != 200:
                    if time.perf_counter() - t1 > 5:
                        break
                read_delays.append(time.perf_counter() - t1)

    def watch() -> None:
        last, last_t = 0, time.perf_counter()
        while not stop.wait(0.5):
            if wal.exists():
                wal_max[0] = max(wal_max[0], wal.stat().st_size)
            now = time.perf_counter()
            if now - last_t >= 5:
                with lock:
                    total = sent[0]
                print(f"  {name}: {total:,} spans, {(total - last) / (now - last_t):,.0f} spans/s now", flush=True)
                last, last_t = total, now
            if target_spans and sent[0] >= target_spans:
                stop.set()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    watcher = threading.Thread(target=watch)
    cpu_before = tree_cpu_seconds(server.proc.pid)
    start = time.perf_counter()
    for t in threads:
        t.start()
    watcher.start()
    if not target_spans:
        stop.wait(seconds)
        stop.set()
    for t in threads:
        t.join()
    watcher.join()
    elapsed = time.perf_counter() - start
    cpu = tree_cpu_seconds(server.proc.pid) - cpu_before
    latencies.sort()
    result = {
        "phase": name,
        "spans_per_s": sent[0] / elapsed,
        "spans": sent[0],
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "refused": len(errors),
        "wal_max_mb": wal_max[0] / 1e6,
        "read_after_ack_ms": 1000 * max(read_delays) if read_delays else None,
        "cpu_us_per_span": 1e6 * cpu / sent[0] if sent[0] and cpu else None,
    }
    if errors:
        print(f"  {name}: {len(errors)} refused, e.g. {errors[0]}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase (default 20)")
    parser.add_argument("--senders", type=int, default=4, help="concurrent sender threads (default 4)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers for both servers (default 1)")
    parser.add_argument("--phases", default="discard,full,json", help="comma-separated: discard, full, json")
    parser.add_argument("--target-spans", type=int, default=0, help="run the full phase until this many spans")
    args = parser.parse_args()
    phases = args.phases.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        for phase in phases:
            kind = "discard" if phase == "discard" else "full"
            data_dir = Path(tmp) / phase / "data"
            data_dir.mkdir(parents=True)
            print(f"== {phase}: starting the {kind} receiver ({args.workers} worker(s))", flush=True)
            server = start_server(kind, data_dir, args.workers)
            try:
                encoding = "json" if phase == "json" else "protobuf"
                target = args.target_spans if phase == "full" else 0
                results.append(
                    run_phase(
                        phase,
                        server,
                        data_dir,
                        encoding,
                        args.seconds,
                        args.senders,
                        target or None,
                        check_reads=kind == "full",
                    )
                )
                db = data_dir / "spyglass.db"
                if db.exists() and kind == "full":
                    size = sum(p.stat().st_size for p in data_dir.glob("spyglass*.db*"))
                    results[-1]["bytes_per_span"] = size / max(1, results[-1]["spans"])
            finally:
                server.stop()
    print()
    print(
        f"{'phase':<8} {'spans/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'refused':>8} {'WAL max MB':>11} "
        f"{'read after 200':>15} {'bytes/span':>11} {'CPU us/span':>12}"
    )
    for r in results:
        read = f"{r['read_after_ack_ms']:.1f} ms" if r["read_after_ack_ms"] is not None else "-"
        bps = f"{r['bytes_per_span']:.0f}" if "bytes_per_span" in r else "-"
        cpu = f"{r['cpu_us_per_span']:.1f}" if r["cpu_us_per_span"] else "-"
        print(
            f"{r['phase']:<8} {r['spans_per_s']:>10,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['refused']:>8} "
            f"{r['wal_max_mb']:>11.1f} {read:>15} {bps:>11} {cpu:>12}"
        )
    by = {r["phase"]: r for r in results}
    if "discard" in by and "full" in by:
        full, discard = by["full"], by["discard"]
        print(
            f"\nfull write path / discard receiver: {full['spans_per_s'] / discard['spans_per_s']:.0%} of the rate",
            end="",
        )
        if full["cpu_us_per_span"] and discard["cpu_us_per_span"]:
            print(f", {discard['cpu_us_per_span'] / full['cpu_us_per_span']:.0%} by server CPU per span", end="")
        print()


if __name__ == "__main__":
    main()
