"""The benchmark workloads: OTLP batches of about 512 spans over 5 services, 16-span
traces, pre-encoded once and renewed per send (trace ids, timestamps, the unique parts of
attribute values) without re-encoding.

Two loads for bench/ingest.py, both with 10 or 11 attributes a span (``retry`` on client
spans only) and a URL and user id unique to each span:

- ``inorder``: each batch holds 32 whole traces whose start times are the present, as
  one exporter's batches would.
- ``spread``: start times spread over the last 15 minutes, and each trace's spans split
  by service into 2 to 4 fragments that travel in different batches, as a fleet of
  collectors delivers them. A round of 8 batches holds 256 traces; 4 rounds are dealt
  out in turn, so a trace's fragments arrive in different requests, seconds apart
  under load, to whichever worker takes each.

:func:`generate_batches` feeds the query benchmark (model spans, not encoded).
"""

from __future__ import annotations

import os
import random
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import json_request, pb_request  # noqa: E402

SERVICES = ["gateway", "orders", "payment", "inventory", "shipping"]
SPANS_PER_BATCH = 512
SPANS_PER_TRACE = 16
LOADS = ("inorder", "spread")
SPREAD_NS = 15 * 60 * 1_000_000_000
"""The spread load's start times fall within this long before the present."""
SPREAD_ROUND = 8
"""Batches in one round of the spread load: each of its traces is split among 2-4 of them."""
SPREAD_OPEN_ROUNDS = 4
"""Rounds of the spread load dealt out in turn."""
MARK = bytes.fromhex("5ca1ab1e5ca1ab1e")  # the first 8 bytes of every trace id in the templates
TAG = b"QQQQQQQQQQQQQQQQ"  # in every URL and user id of the templates: 16 hex digits per send
_TIME_STEP_NS = 10_000_000


def _span_desc(rng: random.Random, trace_no: int, i: int, base_ns: int, tag: str | None = None) -> dict:
    """One span's description. Without ``tag``: 10 attributes, user ids drawn from 10,000.
    With it: a URL and a user id unique to the span (``tag`` and the span's place) and
    ``retry`` on client spans only, 10 or 11 attributes."""
    service = SERVICES[i % len(SERVICES)]
    start = base_ns + i * 1_000_000
    end = start + rng.randrange(100_000, 50_000_000)
    status = (2, "failed") if rng.random() < 0.02 else (0, "")
    attributes = {
        "http.request.method": rng.choice(["GET", "POST"]),
        "http.route": f"/api/{service}/{i % 7}",
        "http.response.status_code": rng.choice([200, 200, 200, 201, 404, 500]),
        "server.address": f"{service}.internal",
        "server.port": 9000 + i % 5,
        "user.id": f"user-{rng.randrange(10_000)}",
        "order.id": rng.randrange(1_000_000),
        "retry": rng.random() < 0.1,
        "payload.bytes": rng.randrange(100, 10_000),
        "region": rng.choice(["eu-west-1", "us-east-1", "ap-south-1"]),
    }
    kind = 2 if i % 2 == 0 else 3
    if tag is not None:
        place = f"{tag}-{trace_no}-{i}"
        attributes["user.id"] = f"user-{place}"
        attributes["url.full"] = f"https://{service}.internal:{9000 + i % 5}/api/{service}/{i % 7}?req={place}"
        if kind == 2:
            del attributes["retry"]
    return {
        "trace_id": (MARK + trace_no.to_bytes(8, "big")).hex(),
        "span_id": (trace_no * 100 + i + 1).to_bytes(8, "big").hex(),
        "parent": (trace_no * 100 + (i - 1) // 2 + 1).to_bytes(8, "big").hex() if i else "",
        "name": f"{service}.op{i % 4}",
        "kind": kind,
        "start": start,
        "end": end,
        "status": status,
        "attributes": attributes,
    }


def _by_service(spans: list[dict]) -> list[dict]:
    """A batch description: the spans grouped under their services' resources."""
    per_service: dict[str, list[dict]] = {s: [] for s in SERVICES}
    for d in spans:
        per_service[d["name"].split(".")[0]].append(d)
    return [
        {"service": s, "resource": {"host.name": f"{s}-1", "service.version": "1.4.2"}, "spans": group}
        for s, group in per_service.items()
        if group
    ]


def template(base_ns: int, seed: int = 1, tag: str | None = None) -> list[dict]:
    """The description of one in-order batch: 32 traces of 16 spans, 10 ms apart from ``base_ns``."""
    rng = random.Random(seed)
    spans = [
        _span_desc(rng, t + 1, i, base_ns + t * 10_000_000, tag)
        for t in range(SPANS_PER_BATCH // SPANS_PER_TRACE)
        for i in range(SPANS_PER_TRACE)
    ]
    return _by_service(spans)


def spread_round(base_ns: int, seed: int = 1, tag: str | None = None) -> list[list[dict]]:
    """The descriptions of one round of the spread load: SPREAD_ROUND batches of about 512
    spans holding 256 traces that start within SPREAD_NS before ``base_ns``, each split by
    service into 2-4 fragments put in as many different batches (the least full ones)."""
    rng = random.Random(seed)
    batches: list[list[dict]] = [[] for _ in range(SPREAD_ROUND)]
    for t in range(SPREAD_ROUND * SPANS_PER_BATCH // SPANS_PER_TRACE):
        base = base_ns - SPREAD_NS + rng.randrange(SPREAD_NS - 100_000_000)
        spans = [_span_desc(rng, t + 1, i, base, tag) for i in range(SPANS_PER_TRACE)]
        services = SERVICES[:]
        rng.shuffle(services)
        k = rng.choice([2, 3, 4])
        targets = sorted(range(SPREAD_ROUND), key=lambda b: (len(batches[b]), rng.random()))[:k]
        for j, target in enumerate(targets):
            mine = set(services[j::k])
            batches[target].extend(d for d in spans if d["name"].split(".")[0] in mine)
    return [_by_service(b) for b in batches]


class _Body:
    """One encoded batch, cut around its timestamps so that they can be moved."""

    def __init__(self, desc: list[dict], encoding: str, mark: bytes) -> None:
        body = pb_request(desc).SerializeToString() if encoding == "protobuf" else json_request(desc)
        spans = [d for r in desc for d in r["spans"]]
        self.encoding = encoding
        self.spans = len(spans)
        self.first_trace = spans[0]["trace_id"][16:]
        assert body.count(mark) == self.spans and body.count(TAG) == 2 * self.spans
        # Cut the body around every timestamp (fixed64 in protobuf, 19 decimal digits in
        # JSON) so that stamp() joins the pieces with shifted ones.
        times = sorted({t for d in spans for t in (d["start"], d["end"])})
        found = []
        for t in times:
            needle = self._encode([t])[0]
            at = body.find(needle)
            while at >= 0:
                found.append((at, t))
                at = body.find(needle, at + len(needle))
        assert len(found) == 2 * self.spans, "a timestamp's bytes are not unique in the template"
        found.sort()
        self.pieces, self.times, pos = [], [], 0
        width = len(self._encode([times[0]])[0])
        for at, t in found:
            self.pieces.append(body[pos:at])
            self.times.append(t)
            pos = at + width
        self.tail = body[pos:]
        self._stamped, self._shift = body, 0

    def _encode(self, times: list[int]) -> list[bytes]:
        if self.encoding == "protobuf":
            packed = struct.pack(f"<{len(times)}Q", *times)
            return [packed[i : i + 8] for i in range(0, len(packed), 8)]
        return [str(t).encode() for t in times]  # the digits, quoted or not

    def stamp(self, shift: int) -> bytes:
        """The body with every timestamp moved by ``shift`` ns (kept until the shift changes)."""
        if shift != self._shift:
            stamps = self._encode([t + shift for t in self.times])
            parts = [part for pair in zip(self.pieces, stamps, strict=True) for part in pair]
            self._stamped, self._shift = b"".join(parts) + self.tail, shift
        return self._stamped


class Batches:
    """Yields distinct encoded batches of one load (``inorder`` or ``spread``), from any
    number of sender threads: each round of batches gets new trace ids and new URLs and
    user ids, and timestamps moved on by the time elapsed since ``base_ns``, as a live
    exporter's batches would have.

    Timestamps matter to the store: its time-ordered indexes take appends from live
    traffic, but random inserts from batches that all carry the same times.
    """

    def __init__(self, base_ns: int, encoding: str = "protobuf", load: str = "inorder") -> None:
        if load not in LOADS:
            raise ValueError(f"unknown load {load!r}: one of {', '.join(LOADS)}")
        self.base_ns = base_ns
        self.encoding = encoding
        self.load = load
        self.mark = MARK if encoding == "protobuf" else MARK.hex().upper().encode()  # json_request upper-cases ids
        tag = TAG.decode()
        descs = [template(base_ns, tag=tag)] if load == "inorder" else spread_round(base_ns, tag=tag)
        self.bodies = [_Body(d, encoding, self.mark) for d in descs]
        self._open: list[list[tuple[bytes, str, int]]] = []
        self._turn = 0
        self._lock = threading.Lock()

    def _round(self) -> list[tuple[bytes, str, int]]:
        prefix = os.urandom(8)
        new = prefix if self.encoding == "protobuf" else prefix.hex().upper().encode()
        tag = prefix.hex().encode()
        # Moved in steps of 10 ms, so that in-order batches are mostly re-stamped only
        # every few sends: the sender's CPU goes to sending.
        shift = (time.time_ns() - self.base_ns) // _TIME_STEP_NS * _TIME_STEP_NS
        out = []
        for b in reversed(self.bodies):  # popped from the end
            body = b.stamp(shift).replace(TAG, tag).replace(self.mark, new)
            out.append((body, prefix.hex() + b.first_trace, b.spans))
        return out

    def next(self) -> tuple[bytes, str, int]:
        """A new batch, one of its trace ids and its number of spans."""
        with self._lock:
            rounds = 1 if self.load == "inorder" else SPREAD_OPEN_ROUNDS
            while len(self._open) < rounds:
                self._open.append(self._round())
            self._turn = (self._turn + 1) % rounds
            pending = self._open[self._turn]
            item = pending.pop()
            if not pending:
                self._open[self._turn] = self._round()
            return item

    @property
    def content_type(self) -> str:
        return "application/x-protobuf" if self.encoding == "protobuf" else "application/json"


def generate_batches(total_spans: int, start_ns: int, spread_ns: int, seed: int = 7):
    """Yield lists of ~512 model spans (32 traces of 16) whose traces start evenly over
    ``spread_ns`` from ``start_ns``; 10 attributes a span, user ids drawn from 10,000 (the
    query benchmark searches for one)."""
    from collectors.model import STATUS_ERROR, Resource, Span

    rng = random.Random(seed)
    resources = {
        s: Resource(s, {"service.name": s, "host.name": f"{s}-1", "service.version": "1.4.2"}, "bench", "1")
        for s in SERVICES
    }
    n_traces = max(1, total_spans // SPANS_PER_TRACE)
    step = spread_ns // n_traces
    batch: list[Span] = []
    for t in range(n_traces):
        trace_id = rng.getrandbits(128).to_bytes(16, "big").hex()
        base = start_ns + t * step
        for i in range(SPANS_PER_TRACE):
            d = _span_desc(rng, t + 1, i, base)
            code, message = d["status"]
            batch.append(
                Span(
                    trace_id=trace_id,
                    span_id=d["span_id"],
                    parent_span_id=d["parent"],
                    name=d["name"],
                    kind=d["kind"],
                    start_ns=d["start"],
                    end_ns=d["end"],
                    resource=resources[SERVICES[i % len(SERVICES)]],
                    attributes=d["attributes"],
                    status_code=STATUS_ERROR if code == 2 else 0,
                    status_message=message,
                )
            )
        if len(batch) >= SPANS_PER_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
