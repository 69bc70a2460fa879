"""Server time of the compare page for two large traces of one operation.

Stores two generated traces of ``--spans`` spans each (a root, 100 calls over ten
services, each with up to 49 steps; B has every tenth step slower, ten steps missing and
ten added) in a fresh SQLite file, then times through the WSGI app, with no network in
between: the diff alone, the page (/traces/compare?a=&b=, its first 1,000 rows), the page
with every row (&rows=all) and the redirect from
the trace page's "previous trace of this operation" link. Prints the median and worst
of each, and the CPU time; exits 1 when the page's median is over the budget.

    python bench/compare.py
    python bench/compare.py --spans 5000 --repeat 5 --budget-ms 500
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.analysis.compare import compare_traces  # noqa: E402
from app.settings import Settings  # noqa: E402
from collectors.model import KIND_SERVER, Resource, Span  # noqa: E402

MS = 1_000_000
A_ID, B_ID = f"{0xA1:032x}", f"{0xB2:032x}"


def make_trace(trace_id: str, start_ns: int, count: int, changed: bool) -> list[Span]:
    """``count`` spans in the shape described above; ``changed`` gives B's differences."""
    rng = random.Random(11)
    res = {i: Resource(f"service-{i}", {"service.name": f"service-{i}"}) for i in range(10)}
    root = Span(trace_id, f"{1:016x}", "", "GET /api/report", KIND_SERVER, start_ns, start_ns + 5000 * MS, res[0])
    out, n = [root], 2
    for i in range(100):
        mid = n
        call_start = start_ns + i * 50 * MS
        out.append(
            Span(
                trace_id,
                f"{mid:016x}",
                root.span_id,
                f"call {i}",
                KIND_SERVER,
                call_start,
                call_start + 45 * MS,
                res[i % 10],
            )
        )
        n += 1
        for j in range(49):
            if n > count:
                break
            begin = call_start + j * 900_000
            length = int(800_000 * rng.uniform(0.8, 1.2))
            name = f"step {j}"
            if changed and j % 10 == 3:
                length *= 3
            if changed and i % 10 == 5 and j == 7:
                name = f"new step {j}"  # one missing and one added span per tenth call
            out.append(Span(trace_id, f"{n:016x}", f"{mid:016x}", name, 1, begin, begin + length, res[i % 10]))
            n += 1
    return out


def timed(fn, repeat: int) -> tuple[float, float, float]:
    """Median and worst wall time, and median CPU time of this process, in ms over
    ``repeat`` runs (the CPU time says what the work costs when other processes share
    the cores)."""
    times, cpu = [], []
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
    return statistics.median(times), max(times), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=5000, help="spans per trace (default 5,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--budget-ms", type=float, default=500.0, help="median server time allowed for the page")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp}/bench.db", prune_interval_s=0)
        app = create_app(settings)
        store = app.extensions["spyglass.store"]
        now = time.time_ns()
        a = make_trace(A_ID, now - 120_000 * MS, args.spans, changed=False)
        b = make_trace(B_ID, now - 60_000 * MS, args.spans, changed=True)
        store.write_spans(a)
        store.write_spans(b)
        client = app.test_client()
        url = f"/traces/compare?a={A_ID}&b={B_ID}"

        def page() -> None:
            response = client.get(url)
            assert response.status_code == 200, response.status_code

        def every_row() -> None:
            response = client.get(url + "&rows=all")
            assert response.status_code == 200, response.status_code

        def previous() -> None:
            response = client.get(f"/traces/compare?previous={B_ID}")
            assert response.status_code == 302 and A_ID in response.headers["Location"]

        page()  # warm-up: templates compiled, connections open
        diff = compare_traces(a, b)
        size = len(client.get(url).get_data())
        whole = len(client.get(url + "&rows=all").get_data())
        print(
            f"two traces of {len(a):,} and {len(b):,} spans: {diff.both:,} matched, {diff.only_b} added, "
            f"{diff.only_a} missing; page {size / 1024:,.0f} KiB, with every row {whole / 1024:,.0f} KiB"
        )
        results = {
            "diff alone (app.analysis.compare)": timed(lambda: compare_traces(a, b), args.repeat),
            "compare page, server time": timed(page, args.repeat),
            "compare page with every row": timed(every_row, args.repeat),
            "previous-trace redirect": timed(previous, args.repeat),
        }
        for label, (median, worst, cpu) in results.items():
            print(f"{label:36s} median {median:7.1f} ms   worst {worst:7.1f} ms   CPU {cpu:7.1f} ms")
        store.close()
    over = results["compare page, server time"][0] > args.budget_ms
    if over:
        print(f"over budget: the page's median is above {args.budget_ms:.0f} ms")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
