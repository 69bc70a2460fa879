"""The ingest benchmark runs and judges: its spread load is what it claims, its bare
receiver keeps one row per span, and a one-second run prints the ratio lines.

No figure is checked here (performance goals are read from the benchmark's output).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import SPREAD_NS, SPREAD_ROUND, Batches
from tests.helpers import ROOT, ServeProcess, start_process, stop_process

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _spans(body: bytes) -> list:
    request = ExportTraceServiceRequest.FromString(body)
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_spread_load_splits_traces_across_requests_over_fifteen_minutes() -> None:
    batches = Batches(time.time_ns(), "protobuf", "spread")
    sent_in: dict[bytes, set[int]] = defaultdict(set)
    urls, users, starts, sizes = set(), set(), [], []
    for n in range(4 * SPREAD_ROUND):  # four whole rounds
        body, trace_id, count = batches.next()
        spans = _spans(body)
        assert len(spans) == count and bytes.fromhex(trace_id) in {s.trace_id for s in spans}
        sizes.append(count)
        for s in spans:
            attributes = {kv.key: kv.value.string_value for kv in s.attributes}
            assert len(attributes) in (10, 11)
            urls.add(attributes["url.full"])
            users.add(attributes["user.id"])
            starts.append(s.start_time_unix_nano)
            sent_in[s.trace_id].add(n)
    total = sum(sizes)
    assert len(urls) == len(users) == total  # unique to each span, across rounds too
    assert all(450 <= size <= 580 for size in sizes)
    assert {len(requests_of_trace) for requests_of_trace in sent_in.values()} == {2, 3, 4}
    assert len(sent_in) * 16 == total
    spread = max(starts) - min(starts)
    assert 0.9 * SPREAD_NS < spread < SPREAD_NS
    assert max(starts) < time.time_ns()


def test_bare_receiver_keeps_one_row_per_span_and_ignores_a_batch_sent_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = data_dir / "bare.db"
    program = [sys.executable, str(ROOT / "bench" / "bare_server.py")]
    server = ServeProcess(data_dir, "2", str(db), program=program)
    try:
        batches = Batches(time.time_ns(), "protobuf", "spread")
        bodies = [batches.next() for _ in range(3)]
        for body, _, _ in [*bodies, bodies[0]]:
            r = requests.post(f"{server.otlp}/v1/traces", data=body, headers=PROTOBUF, timeout=30)
            assert r.status_code == 200, r.text
    finally:
        server.stop()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = conn.execute("SELECT count(*), count(DISTINCT trace_id) FROM spans").fetchone()
        indexes = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    finally:
        conn.close()
    traces = {s.trace_id for body, _, _ in bodies for s in _spans(body)}
    assert rows == (sum(count for _, _, count in bodies), len(traces))
    assert len(indexes) == 1  # the primary key's, and no other


def test_ingest_benchmark_prints_the_ratio_lines() -> None:
    cmd = [sys.executable, "bench/ingest.py", "--seconds", "1", "--phases", "bare,full", "--load", "spread"]
    proc = start_process(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        stop_process(proc, grace_s=30)
    assert proc.returncode == 0, out
    rows = {m[1]: float(m[2].replace(",", "")) for m in re.finditer(r"^(bare|full) +1 +([\d,]+) ", out, re.M)}
    assert set(rows) == {"bare", "full"} and all(rate > 0 for rate in rows.values()), out
    ratio = r"^spread: full / bare receiver \(1 worker\(s\) each\): [\d.]+x the rate \(goal >= 1\.10x: (met|NOT met)\)"
    assert re.search(ratio, out, re.M), out
    assert "full / discard" not in out  # no discard phase was run
