"""Slow-client benchmark: p99 of other clients' requests on both ports of `spyglass serve`,
first alone, then while 100 connections trickle their request heads or bodies a byte
every half second or send nothing (a third each), each opened again as soon as the
server closes it.

Each probe request is a new connection: the dashboard's overview page, and a one-span
OTLP/protobuf export. Everything runs on loopback, bounded in time, and the server is
stopped whatever happens.

    python bench/slow_clients.py                 # 1 worker, 15 s per phase
    python bench/slow_clients.py --workers 2 --connections 100 --seconds 30
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import ServeProcess  # noqa: E402
from tests.slow_clients import p99, probe, slow_clients  # noqa: E402


def _line(phase: str, times: dict[str, list[float]]) -> str:
    cells = [f"{name} p99 {p99(v) * 1000:7.1f} ms (max {max(v) * 1000:7.1f}, n={len(v)})" for name, v in times.items()]
    return f"{phase:<16}" + "   ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (default 1)")
    parser.add_argument("--connections", type=int, default=100, help="slow connections (default 100)")
    parser.add_argument("--seconds", type=float, default=15, help="length of each phase (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServeProcess(Path(tmp) / "data", "--workers", str(args.workers))
        try:
            probe(server.ui, server.otlp, 1.0)  # warm-up: first requests load templates and caches
            alone = probe(server.ui, server.otlp, args.seconds)
            ports = [server.ui_port, server.otlp_port]
            with slow_clients(ports, count=args.connections, seconds=args.seconds + 5):
                time.sleep(0.5)
                loaded = probe(server.ui, server.otlp, args.seconds)
        finally:
            server.stop()
    print(f"spyglass serve, {args.workers} worker(s); other clients' requests, each on a new connection:")
    print(_line("alone", alone))
    print(_line(f"{args.connections} slow", loaded))


if __name__ == "__main__":
    main()
