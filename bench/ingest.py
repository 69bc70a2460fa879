"""Ingest benchmark: sustained spans/s and request latency into `spyglass serve`, against two
baselines run with the same gunicorn set-up, decoding and number of workers in the same run:
the discard receiver (bench/discard_server.py: decodes, builds rows, drops them) and the
bare receiver (bench/bare_server.py: one row per span in a plain SQLite table).

Posts pre-encoded OTLP batches of about 512 spans (16-span traces over 5 services, 10-11
attributes a span, a URL and user id unique to each span) over loopback from several sender
threads for a bounded time, for each load of bench/workload.py: ``inorder`` (whole traces
starting now) and ``spread`` (start times over the last 15 minutes, each trace split across
2-4 batches sent in different requests). For each load it prints spans/s, request p50/p99,
CPU per span of the servers' processes (a PostgreSQL server's own is not counted), how
soon an acknowledged trace is readable, the largest size SQLite's write-ahead log reached
and bytes per span stored; then the write path's rate against the bare
receiver's (goal: at least 1.10x) and the discard receiver's (goal: at least 70 %).

Phases: ``discard``, ``bare``, ``full`` (spyglass serve, protobuf), ``json`` (spyglass
serve, OTLP/JSON). ``--database-url`` runs ``full`` and ``json`` against that database (a
fresh schema each time, dropped afterwards, for PostgreSQL); ``--pg-matrix`` runs ``full``
there with 1, 2 and 4 workers and with 2 processes of 2 workers sharing the database.

    python bench/ingest.py                                  # 20 s per phase and load
    python bench/ingest.py --seconds 60 --workers 2 --load spread
    python bench/ingest.py --database-url postgresql+psycopg://u:p@127.0.0.1/db --pg-matrix
    python bench/ingest.py --target-spans 10000000 --phases full   # grow the store to 10M spans
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import LOADS, Batches  # noqa: E402
from tests.helpers import ServeProcess  # noqa: E402

PHASES = ("discard", "bare", "full", "json")
GOAL_OVER_BARE = 1.10
GOAL_OF_DISCARD = 0.70
PG_MATRIX = ((1, 1), (1, 2), (1, 4), (2, 2))
"""(processes, workers each) of --pg-matrix."""


@dataclass(frozen=True)
class Config:
    """One phase of one load: which server, how many of them, with how many workers."""

    phase: str
    load: str
    processes: int
    workers: int

    @property
    def label(self) -> str:
        return self.phase if self.processes == 1 else f"{self.phase} {self.processes}p"

    @property
    def layout(self) -> str:
        return str(self.workers) if self.processes == 1 else f"{self.processes}x{self.workers}"


def start_servers(config: Config, data_dir: Path, database_url: str) -> list[ServeProcess]:
    """The phase's servers on free loopback ports. `spyglass serve` keeps every span sent
    (retention off); its database URL travels in the environment, not on a command line."""
    servers: list[ServeProcess] = []
    try:
        for _ in range(config.processes):
            if config.phase == "discard":
                program = [sys.executable, str(ROOT / "bench" / "discard_server.py")]
                servers.append(ServeProcess(data_dir, str(config.workers), program=program))
            elif config.phase == "bare":
                program = [sys.executable, str(ROOT / "bench" / "bare_server.py")]
                servers.append(ServeProcess(data_dir, str(config.workers), str(data_dir / "bare.db"), program=program))
            else:
                env = {"SPYGLASS_DATABASE_URL": database_url} if database_url else {}
                args = ("--workers", str(config.workers), "--max-spans", "0", "--retention-hours", "0")
                servers.append(ServeProcess(data_dir, *args, env=env))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[tuple[str, list[int]]]:
    """``url`` (PostgreSQL) narrowed to a new, empty schema, and a list that gets the
    schema's size in bytes once the phase is over; the schema is dropped afterwards."""
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    size: list[int] = []
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in url else "?"
        try:
            yield f"{url}{sep}options=-csearch_path%3D{schema}", size
            with admin.begin() as conn:
                size.append(
                    conn.exec_driver_sql(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                        (schema,),
                    ).scalar_one()
                )
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    finally:
        admin.dispose()


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
    config: Config,
    servers: list[ServeProcess],
    wal: Path | None,
    seconds: float,
    senders: int,
    target_spans: int | None,
    check_reads: bool,
) -> dict:
    """Send for ``seconds`` (or until ``target_spans``); sender n posts to server n mod the
    number of servers."""
    batches = Batches(time.time_ns(), "json" if config.phase == "json" else "protobuf", config.load)
    latencies: list[float] = []
    read_delays: list[float] = []
    errors: list[str] = []
    sent = [0]
    lock = threading.Lock()
    stop = threading.Event()
    wal_max = [0]

    def sender(n: int) -> None:
        server = servers[n % len(servers)]
        url = f"{server.otlp}/v1/traces"
        session = requests.Session()
        headers = {"Content-Type": batches.content_type}
        i = 0
        while not stop.is_set():
            body, trace_id, spans = batches.next()
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
                sent[0] += spans
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
            if wal is not None and wal.exists():
                wal_max[0] = max(wal_max[0], wal.stat().st_size)
            now = time.perf_counter()
            if now - last_t >= 5:
                with lock:
                    total = sent[0]
                rate = (total - last) / (now - last_t)
                print(f"  {config.label}: {total:,} spans, {rate:,.0f} spans/s now", flush=True)
                last, last_t = total, now
            if target_spans and sent[0] >= target_spans:
                stop.set()

    def cpu() -> float:
        return sum(tree_cpu_seconds(s.proc.pid) for s in servers)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    watcher = threading.Thread(target=watch)
    cpu_before = cpu()
    start = time.perf_counter()
    try:
        for t in threads:
            t.start()
        watcher.start()
        # Until the time is up, or until the watcher has seen the target reached.
        stop.wait(None if target_spans else seconds)
    finally:  # also on SIGTERM or Ctrl-C, so that the servers are stopped
        stop.set()
        for t in [*threads, watcher]:
            if t.is_alive():
                t.join()
    elapsed = time.perf_counter() - start
    used = cpu() - cpu_before
    latencies.sort()
    if errors:
        print(f"  {config.label}: {len(errors)} refused, e.g. {errors[0]}", flush=True)
    return {
        "config": config,
        "senders": senders,
        "spans_per_s": sent[0] / elapsed,
        "spans": sent[0],
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "refused": len(errors),
        "wal_max_mb": wal_max[0] / 1e6 if wal is not None else None,
        "read_after_ack_ms": 1000 * max(read_delays) if read_delays else None,
        "cpu_us_per_span": 1e6 * used / sent[0] if sent[0] and used else None,
    }


def measure(config: Config, tmp: Path, args: argparse.Namespace, target: int) -> dict:
    """Start the config's servers (on a fresh store), run the phase, stop them."""
    data_dir = tmp / f"{config.load}-{config.label.replace(' ', '-')}-{config.layout}" / "data"
    data_dir.mkdir(parents=True)
    senders = max(args.senders, config.processes * config.workers)
    on_db = config.phase in ("full", "json") and args.database_url
    where = " on the database" if on_db else ""
    print(
        f"== {config.load}: {config.label}{where}, {config.processes} process(es) of {config.workers} worker(s), "
        f"{senders} senders",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        url, size = stack.enter_context(fresh_database(args.database_url)) if on_db else ("", [])
        servers = start_servers(config, data_dir, url)
        try:
            wal_name = {"discard": None, "bare": "bare.db-wal"}.get(config.phase, "spyglass.db-wal")
            wal = data_dir / wal_name if wal_name and not on_db else None
            full = config.phase in ("full", "json")
            result = run_phase(config, servers, wal, args.seconds, senders, target or None, check_reads=full)
        finally:
            for server in servers:
                server.stop()
    files = {"bare": "bare.db*", "discard": ""}.get(config.phase, "spyglass*.db*")
    stored = size[0] if size else sum(p.stat().st_size for p in data_dir.glob(files)) if files else 0
    if stored and result["spans"]:
        result["bytes_per_span"] = stored / result["spans"]
    return result


def print_load(load: str, results: list[dict], workers: int, on_db: bool) -> None:
    """The table of one load and the write path's ratios to the baselines."""
    about = {
        "inorder": "whole traces in each batch, starting now",
        "spread": "start times over 15 minutes, traces split across 2-4 batches",
    }[load]
    print(f"\nload {load}: {about}" + ("; full and json on the database" if on_db else ""))
    print(
        f"{'phase':<10} {'workers':>7} {'spans/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'refused':>8} {'WAL max MB':>11} "
        f"{'read after 200':>15} {'bytes/span':>11} {'CPU us/span':>12}"
    )
    for r in results:
        read = f"{r['read_after_ack_ms']:.1f} ms" if r["read_after_ack_ms"] is not None else "-"
        bps = f"{r['bytes_per_span']:.0f}" if "bytes_per_span" in r else "-"
        cpu = f"{r['cpu_us_per_span']:.1f}" if r["cpu_us_per_span"] else "-"
        wal = f"{r['wal_max_mb']:.1f}" if r["wal_max_mb"] is not None else "-"
        print(
            f"{r['config'].label:<10} {r['config'].layout:>7} {r['spans_per_s']:>10,.0f} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['refused']:>8} {wal:>11} {read:>15} {bps:>11} {cpu:>12}"
        )
    same = {r["config"].phase: r for r in results if r["config"].processes == 1 and r["config"].workers == workers}
    full = same.get("full")
    if full is None or not full["spans_per_s"]:
        return
    for name, goal in (("bare", GOAL_OVER_BARE), ("discard", GOAL_OF_DISCARD)):
        base = same.get(name)
        if base is None or not base["spans_per_s"]:
            continue
        ratio = full["spans_per_s"] / base["spans_per_s"]
        if name == "bare":
            shown, wanted = f"{ratio:.2f}x the rate", f"{goal:.2f}x"
        else:
            shown, wanted = f"{ratio:.0%} of the rate", f"{goal:.0%}"
        where = " (full on the database)" if on_db else ""
        line = (
            f"{load}: full / {name} receiver{where} ({workers} worker(s) each): {shown} "
            f"(goal >= {wanted}: {'met' if ratio >= goal else 'NOT met'})"
        )
        if full["cpu_us_per_span"] and base["cpu_us_per_span"]:
            line += f"; server CPU per span {full['cpu_us_per_span'] / base['cpu_us_per_span']:.2f}x the {name}'s"
        print(line)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally clauses that stop the servers


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase (default 20)")
    parser.add_argument(
        "--senders", type=int, default=4, help="concurrent sender threads, at least one per worker (default 4)"
    )
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers for every server (default 1)")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)} (default all)"
    )
    parser.add_argument("--load", choices=(*LOADS, "both"), default="both", help="the load(s) to send (default both)")
    parser.add_argument("--database-url", default="", help="run full and json against this database (PostgreSQL)")
    parser.add_argument("--pg-matrix", action="store_true", help="full with 1, 2, 4 workers and 2 processes of 2")
    parser.add_argument("--target-spans", type=int, default=0, help="run the full phase until this many spans")
    args = parser.parse_args()
    phases = args.phases.split(",")
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(unknown)}: choose among {', '.join(PHASES)}")
    if args.pg_matrix and not args.database_url.startswith("postgresql"):
        parser.error("--pg-matrix needs --database-url postgresql+psycopg://...")
    if args.seconds <= 0 or args.workers < 1 or args.senders < 1:
        parser.error("--seconds, --workers and --senders must be positive")
    loads = LOADS if args.load == "both" else (args.load,)
    if args.database_url:
        from sqlalchemy.engine import make_url

        shown = make_url(args.database_url).render_as_string(hide_password=True)
        print(f"full and json write to {shown}, a fresh schema each phase", flush=True)
    by_load: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        for load in loads:
            configs = []
            for phase in phases:
                if phase == "full" and args.pg_matrix:
                    configs.extend(Config(phase, load, p, w) for p, w in PG_MATRIX)
                else:
                    configs.append(Config(phase, load, 1, args.workers))
            results = by_load[load] = []
            for config in configs:
                first_full = config.phase == "full" and not any(r["config"].phase == "full" for r in results)
                results.append(measure(config, Path(tmp), args, args.target_spans if first_full else 0))
    for load, results in by_load.items():
        print_load(load, results, args.workers, bool(args.database_url))


if __name__ == "__main__":
    main()
