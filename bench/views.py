"""Server time of every page's first screen over a large store.

Loads ``--spans`` synthetic spans (traces of ten spans each: calls across five services,
a database call, a call through a circuit breaker, a saga with three steps, now and then
a fail-over) spread over the last hour, then times each page through the WSGI app and
prints the figures: the overview, trace search, a trace, the comparison of two traces, the
service graph with a node's and an edge's details, breakers, sagas and a saga, the registry
page and the instances fragment it loads at once (its registry unreachable, as without the
demo), the chaos lab and /learn. The trace page is
the waterfall of a trace in which a breaker opened (one in 5,000 traces; the latest failing
trace in a store too small to have one), compared with the latest trace before it.

    python bench/views.py --spans 1000000
    python bench/views.py --spans 20000 --db /tmp/bench.db
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from collectors.model import KIND_CLIENT, KIND_SERVER, STATUS_ERROR, STATUS_UNSET, Resource, Span, SpanEvent  # noqa: E402
from collectors.store import SpanStore  # noqa: E402

SPANS_PER_TRACE = 10
PAGES = (
    "/",
    "/traces",
    "/services?window=1h",
    "/services/node?name=orders&window=1h",
    "/services/edge?parent=orders&child=payment&window=1h",
    "/breakers?window=1h",
    "/sagas",
    "/registry?window=1h",
    "/registry/instances?window=1h",
    "/chaos",
    "/learn",
    "/api/v1/graph?window=1h",
)
MS = 1_000_000


def make_trace(rng: random.Random, n: int, start_ns: int, res: dict[str, Resource]) -> list[Span]:
    """One trace of SPANS_PER_TRACE spans."""
    tid = f"{rng.getrandbits(128):032x}"
    ids = [f"{rng.getrandbits(64) | 1:016x}" for _ in range(SPANS_PER_TRACE)]
    fail = rng.random() < 0.05
    err = STATUS_ERROR if fail else STATUS_UNSET
    d = lambda base: int(base * MS * rng.uniform(0.5, 2.0))  # noqa: E731
    saga = {"saga.name": "order", "saga.id": f"saga-{n}"}
    breaker = {"circuit_breaker.name": "orders->payment", "circuit_breaker.state": "closed"}
    events: tuple[SpanEvent, ...] = ()
    if n % 5000 == 4999:
        events = (
            SpanEvent(
                start_ns + 5 * MS,
                "circuit_breaker.state_change",
                {
                    "circuit_breaker.name": "orders->payment",
                    "circuit_breaker.state.from": "closed",
                    "circuit_breaker.state.to": "open",
                    "circuit_breaker.failure_count": 5,
                },
            ),
        )
    failover: tuple[SpanEvent, ...] = ()
    if n % 1000 == 999:
        where = {"discovery.instance.id": "inventory-2", "error": "refused"}
        failover = (SpanEvent(start_ns + 18 * MS, "discovery.failover", where),)
    t = start_ns
    rows = [
        (ids[0], "", "gateway", "GET /api/orders", KIND_SERVER, t, d(40), STATUS_UNSET, {}, ()),
        (ids[1], ids[0], "gateway", "POST orders", KIND_CLIENT, t + MS, d(35), STATUS_UNSET, {}, ()),
        (
            ids[2],
            ids[1],
            "orders",
            "POST /orders",
            KIND_SERVER,
            t + 2 * MS,
            d(30),
            STATUS_UNSET,
            {**saga, "saga.outcome": "compensated" if fail else "completed"},
            (),
        ),
        (
            ids[3],
            ids[2],
            "orders",
            "INSERT",
            KIND_CLIENT,
            t + 3 * MS,
            d(1),
            STATUS_UNSET,
            {"db.system": "sqlite", "db.name": "orders.db"},
            (),
        ),
        (
            ids[4],
            ids[2],
            "orders",
            "create",
            1,
            t + 4 * MS,
            d(2),
            STATUS_UNSET,
            {**saga, "saga.step": "create", "saga.step.index": 0, "saga.phase": "action"},
            (),
        ),
        (
            ids[5],
            ids[2],
            "orders",
            "POST payment",
            KIND_CLIENT,
            t + 6 * MS,
            d(10),
            err,
            {**saga, "saga.step": "pay", "saga.step.index": 1, "saga.phase": "action", **breaker},
            events,
        ),
        (ids[6], ids[5], "payment", "POST /charge", KIND_SERVER, t + 7 * MS, d(8), err, {}, ()),
        (ids[7], ids[2], "orders", "POST inventory", KIND_CLIENT, t + 18 * MS, d(5), STATUS_UNSET, {}, failover),
        (ids[8], ids[7], "inventory", "POST /reserve", KIND_SERVER, t + 19 * MS, d(4), STATUS_UNSET, {}, ()),
        (
            ids[9],
            ids[2],
            "orders",
            "undo create" if fail else "ship",
            1,
            t + 25 * MS,
            d(2),
            STATUS_UNSET,
            {
                **saga,
                "saga.step": "create" if fail else "ship",
                "saga.step.index": 0 if fail else 2,
                "saga.phase": "compensation" if fail else "action",
            },
            (),
        ),
    ]
    return [
        Span(tid, sid, parent, name, kind, st, st + dur, res[svc], attrs, ev, status_code=code)
        for sid, parent, svc, name, kind, st, dur, code, attrs, ev in rows
    ]


def load(store: SpanStore, spans: int, batch_traces: int = 200) -> float:
    """Write ``spans`` spans over the last hour; returns the seconds it took."""
    rng = random.Random(7)
    res = {
        s: Resource(s, {"service.name": s, "service.instance.id": f"{s}-1"})
        for s in ("gateway", "orders", "payment", "inventory")
    }
    traces = max(1, spans // SPANS_PER_TRACE)
    now = time.time_ns()
    began = time.perf_counter()
    batch: list[Span] = []
    for n in range(traces):
        start = now - 3_600_000_000_000 + n * 3_600_000_000_000 // traces
        batch.extend(make_trace(rng, n, start, res))
        if len(batch) >= batch_traces * SPANS_PER_TRACE:
            store.write_spans(batch)
            batch = []
    if batch:
        store.write_spans(batch)
    return time.perf_counter() - began


def trace_pages(store: SpanStore) -> tuple[str, ...]:
    """The waterfall of a trace in which a breaker opened (else of the latest failing trace),
    its comparison with the trace before it, and the page of that trace's saga."""
    now = time.time_ns()
    transitions = store.find_breaker_transitions(now - 2 * 3_600_000_000_000, now, limit=1)
    if transitions:
        trace_id = transitions[0].trace_id
    else:
        failing = store.find_service_traces("gateway", now - 2 * 3_600_000_000_000, now, failing=True, limit=1)
        if not failing:
            return ()
        trace_id = failing[0].trace_id
    pages = [f"/traces/{trace_id}", f"/traces/compare?previous={trace_id}"]
    saga = next((s.attributes["saga.id"] for s in store.get_trace(trace_id) if "saga.id" in s.attributes), None)
    if saga:
        pages.append(f"/sagas/{saga}")
    return tuple(pages)


def time_pages(app, runs: int, pages: tuple[str, ...] = PAGES) -> dict[str, list[float]]:
    """Milliseconds per request for each page (after one warm-up request)."""
    client = app.test_client()
    out = {}
    for path in pages:
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, (path, response.status_code)
        if response.history:  # time the page a redirect leads to (compare?previous= answers a 302)
            path = response.request.full_path.rstrip("?")
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200
        out[path] = times
    return out


def main(argv: list[str] | None = None) -> int:
    """Load, time, print; exit 1 if a page's median is over the budget."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans to load (default 1,000,000)")
    parser.add_argument(
        "--db", help="SQLite file to use (kept); default: a temporary file; an existing file is reused without loading"
    )
    parser.add_argument("--runs", type=int, default=7, help="timed requests per page")
    parser.add_argument("--budget-ms", type=float, default=300.0, help="median server time allowed per page")
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="spyglass-bench-")
    db = args.db or os.path.join(tmp, "bench.db")
    existed = os.path.exists(db)
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{db}", registry_url="http://127.0.0.1:9")
    store = SpanStore.from_url(settings.store_url)
    if not existed:
        seconds = load(store, args.spans)
        print(f"loaded {args.spans:,} spans in {seconds:.1f}s ({args.spans / seconds:,.0f} spans/s)")
    print(f"store holds {store.count_spans():,} spans")
    app = create_app(settings, store=store)
    failed = False
    for path, times in time_pages(app, args.runs, PAGES + trace_pages(store)).items():
        median = statistics.median(times)
        over = median > args.budget_ms
        failed |= over
        print(
            f"{path:56s} median {median:7.1f} ms  min {min(times):7.1f}  max {max(times):7.1f}"
            f"{'  OVER BUDGET' if over else ''}"
        )
    store.close()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
