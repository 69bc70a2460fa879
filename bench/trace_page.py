"""Measure the trace page on a large trace: server time for the first screen and the rest.

Usage: python bench/trace_page.py [--spans 5000] [--repeat 5]

Stores a generated trace (the shape of tests/fixtures/traces/huge.json) in a fresh SQLite
file, then times, through the WSGI app with no network in between: loading the spans,
building the view model, the first page of the trace, one lazily loaded page of rows, the
statistics view and the downloads. Prints the median and worst of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.analysis.tree import build_trace_view  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.traces import FIRST_PAGE_ROWS, MORE_ROWS  # noqa: E402
from tests.fixtures.traces.generate import huge  # noqa: E402

TRACE_ID = f"{0x50:032x}"


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Median and worst wall time in ms over ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=tmp, database_url=f"sqlite:///{tmp}/bench.db", prune_interval_s=0))
        client = app.test_client()
        body = json.dumps(huge(args.spans)).encode()
        response = client.post("/v1/traces", data=body, content_type="application/json")
        assert response.status_code == 200, response.get_data(as_text=True)
        store = app.extensions["spyglass.store"]
        spans = store.get_trace(TRACE_ID)
        print(f"trace {TRACE_ID}: {len(spans)} spans, first page {FIRST_PAGE_ROWS} rows, then {MORE_ROWS} per page")

        def get(url: str, **headers: str):
            def run():
                r = client.get(url, headers=headers)
                assert r.status_code == 200, (url, r.status_code)
                return r

            return run

        rows = [
            ("store.get_trace", lambda: store.get_trace(TRACE_ID)),
            ("build_trace_view", lambda: build_trace_view(spans)),
            ("GET trace page (first screen)", get(f"/traces/{TRACE_ID}")),
            (
                "GET next rows (htmx, offset 300)",
                get(f"/traces/{TRACE_ID}/rows?offset={FIRST_PAGE_ROWS}", **{"HX-Request": "true"}),
            ),
            ("GET span panel (htmx)", get(f"/traces/{TRACE_ID}/spans/{spans[-1].span_id}", **{"HX-Request": "true"})),
            ("GET statistics", get(f"/traces/{TRACE_ID}/stats")),
            ("GET OTLP JSON download", get(f"/traces/{TRACE_ID}/otlp.json")),
            ("GET Jaeger JSON download", get(f"/traces/{TRACE_ID}/jaeger.json")),
        ]
        print(f"{'step':40} {'median ms':>10} {'worst ms':>10} {'bytes':>10}")
        for name, fn in rows:
            median, worst, result = timed(fn, args.repeat)
            size = len(result.data) if hasattr(result, "data") else ""
            print(f"{name:40} {median:10.1f} {worst:10.1f} {size:>10}")
        store.close()


if __name__ == "__main__":
    main()
