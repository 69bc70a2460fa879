"""Query benchmark: load a store with generated spans, then time the Jaeger API over HTTP.

Loads N spans (16-span traces over 5 services, 10 attributes a span, start times spread
over the last 6 hours) straight into an SQLite file through SpanStore.write_spans, starts
`spyglass serve` on it, and prints p50/p99 over loopback for: trace by id; search by
service + time + error status + duration; search by one attribute equality within a
1-hour window; the services and dependencies lists. Then disk bytes per span and the
server's resident memory.

    python bench/query.py                    # 1,000,000 spans
    python bench/query.py --spans 10000000   # the large run (takes a while to load)
    python bench/query.py --reuse DIR        # skip loading: a data directory from an earlier run
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import generate_batches  # noqa: E402
from collectors.store import SpanStore  # noqa: E402
from tests.helpers import ServeProcess  # noqa: E402

HOUR_NS = 3_600_000_000_000


def load(data_dir: Path, spans: int) -> tuple[list[str], int]:
    """Write ``spans`` generated spans; returns a sample of trace ids and the load rate."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SpanStore.from_url(f"sqlite:///{data_dir / 'spyglass.db'}")
    now = time.time_ns()
    sample: list[str] = []
    written, t0, last = 0, time.perf_counter(), time.perf_counter()
    for batch in generate_batches(spans, now - 6 * HOUR_NS, 6 * HOUR_NS):
        store.write_spans(batch)
        written += len(batch)
        if len(sample) < 2000 and random.random() < 0.2:
            sample.append(batch[0].trace_id)
        if time.perf_counter() - last > 5:
            last = time.perf_counter()
            print(f"  loaded {written:,} spans ({written / (last - t0):,.0f} spans/s)", flush=True)
    store.close()
    rate = written / (time.perf_counter() - t0)
    print(f"  loaded {written:,} spans in {time.perf_counter() - t0:.0f} s ({rate:,.0f} spans/s)", flush=True)
    return sample, int(rate)


def timed(session: requests.Session, url: str, params: dict | None, n: int) -> tuple[float, float, int]:
    """p50 and p99 in ms over ``n`` requests (after one warm-up), and the last result count."""
    session.get(url, params=params, timeout=60).raise_for_status()
    times, count = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = session.get(url, params=params, timeout=60)
        times.append(1000 * (time.perf_counter() - t0))
        r.raise_for_status()
        count = len(r.json()["data"])
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))], count


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if proc.name == str(pid) or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans to load (default 1,000,000)")
    parser.add_argument("--requests", type=int, default=200, help="requests per measured query (default 200)")
    parser.add_argument("--reuse", type=Path, help="data directory of an earlier run (skips loading)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spyglass-query-") as tmp:
        data_dir = args.reuse or Path(tmp) / "data"
        if args.reuse:
            store = SpanStore.from_url(f"sqlite:///{data_dir / 'spyglass.db'}")
            sample = [t.trace_id for t in store.recent_traces(1500)]
            store.close()
        else:
            print(f"== loading {args.spans:,} spans into {data_dir}", flush=True)
            sample, _ = load(data_dir, args.spans)
        stored = SpanStore.from_url(f"sqlite:///{data_dir / 'spyglass.db'}")
        span_count = stored.count_spans()
        stored.checkpoint()
        stored.close()
        disk = sum(p.stat().st_size for p in data_dir.glob("spyglass*.db*"))
        print("== starting spyglass serve", flush=True)
        server = ServeProcess(data_dir)
        try:
            s = requests.Session()
            api = f"{server.ui}/api"
            now_us = time.time_ns() // 1000
            hour = {"start": now_us - 3_600_000_000 * 2, "end": now_us - 3_600_000_000}
            rng = random.Random(3)
            rows = []

            times = []
            for _ in range(args.requests):
                trace_id = rng.choice(sample)
                t0 = time.perf_counter()
                r = s.get(f"{api}/traces/{trace_id}", timeout=60)
                times.append(1000 * (time.perf_counter() - t0))
                assert r.status_code == 200, r.text
            times.sort()
            rows.append(("trace by id", statistics.median(times), times[int(len(times) * 0.99) - 1], 1))
            rows.append(
                (
                    "search: service+1h+error+minDuration",
                    *timed(
                        s,
                        f"{api}/traces",
                        {
                            **hour,
                            "service": "payment",
                            "tags": json.dumps({"error": "true"}),
                            "minDuration": "20ms",
                            "limit": 20,
                        },
                        args.requests,
                    ),
                )
            )
            rows.append(
                (
                    "search: one attribute, 1h window",
                    *timed(
                        s,
                        f"{api}/traces",
                        {**hour, "tags": json.dumps({"user.id": "user-1234"}), "limit": 20},
                        args.requests,
                    ),
                )
            )
            rows.append(
                (
                    "search: common attribute, 1h window",
                    *timed(
                        s,
                        f"{api}/traces",
                        {**hour, "tags": json.dumps({"http.request.method": "GET"}), "limit": 20},
                        args.requests,
                    ),
                )
            )
            rows.append(("services", *timed(s, f"{api}/services", None, args.requests)))
            rows.append(("dependencies (24h)", *timed(s, f"{api}/dependencies", None, args.requests)))
            memory = rss_mb(server.proc.pid)
        finally:
            server.stop()
    print()
    print(
        f"store: {span_count:,} spans, {disk / 1e6:,.0f} MB on disk, {disk / max(1, span_count):.0f} bytes/span; "
        f"server RSS after the queries: {memory:.0f} MB"
    )
    print(f"{'query':<40} {'p50 ms':>8} {'p99 ms':>8} {'results':>8}")
    for name, p50, p99, n in rows:
        print(f"{name:<40} {p50:>8.1f} {p99:>8.1f} {n:>8}")


if __name__ == "__main__":
    main()
