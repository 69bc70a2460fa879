"""The benchmark workload: pre-encoded OTLP batches of 512 spans, 10 attributes a span,
5 services, 16-span traces, whose trace ids and timestamps are renewed per send without
re-encoding."""

from __future__ import annotations

import os
import random
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import json_request, pb_request  # noqa: E402

SERVICES = ["gateway", "orders", "payment", "inventory", "shipping"]
SPANS_PER_BATCH = 512
SPANS_PER_TRACE = 16
MARK = bytes.fromhex("5ca1ab1e5ca1ab1e")  # the first 8 bytes of every trace id in the template
_TIME_STEP_NS = 10_000_000


def _span_desc(rng: random.Random, trace_no: int, i: int, base_ns: int) -> dict:
    service = SERVICES[i % len(SERVICES)]
    start = base_ns + i * 1_000_000
    return {
        "trace_id": (MARK + trace_no.to_bytes(8, "big")).hex(),
        "span_id": (trace_no * 100 + i + 1).to_bytes(8, "big").hex(),
        "parent": (trace_no * 100 + (i - 1) // 2 + 1).to_bytes(8, "big").hex() if i else "",
        "name": f"{service}.op{i % 4}",
        "kind": 2 if i % 2 == 0 else 3,
        "start": start,
        "end": start + rng.randrange(100_000, 50_000_000),
        "status": (2, "failed") if rng.random() < 0.02 else (0, ""),
        "attributes": {
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
        },
    }


def template(base_ns: int, seed: int = 1) -> list[dict]:
    """The description of one batch: 32 traces of 16 spans spread over 5 services."""
    rng = random.Random(seed)
    per_service: dict[str, list[dict]] = {s: [] for s in SERVICES}
    for t in range(SPANS_PER_BATCH // SPANS_PER_TRACE):
        for i in range(SPANS_PER_TRACE):
            d = _span_desc(rng, t + 1, i, base_ns + t * 10_000_000)
            per_service[SERVICES[i % len(SERVICES)]].append(d)
    return [
        {"service": s, "resource": {"host.name": f"{s}-1", "service.version": "1.4.2"}, "spans": spans}
        for s, spans in per_service.items()
    ]


class Batches:
    """Yields distinct encoded batches from one template: each send gets new trace ids and
    timestamps moved to the present, as a live exporter's batches would have.

    Timestamps matter to the store: its time-ordered indexes take appends from live
    traffic, but random inserts from batches that all carry the same times.
    """

    def __init__(self, base_ns: int, encoding: str = "protobuf") -> None:
        desc = template(base_ns)
        self.base_ns = base_ns
        self.encoding = encoding
        if encoding == "protobuf":
            body = pb_request(desc).SerializeToString()
            self.mark = MARK
        else:
            body = json_request(desc)
            self.mark = MARK.hex().upper().encode()  # json_request upper-cases trace ids
        assert body.count(self.mark) == SPANS_PER_BATCH
        # Cut the body around every timestamp (fixed64 in protobuf, 19 decimal digits in
        # JSON) so that next() joins the pieces with shifted ones.
        times = sorted({t for r in desc for d in r["spans"] for t in (d["start"], d["end"])})
        found = []
        for t in times:
            needle = self._encode_times([t])[0]
            at = body.find(needle)
            while at >= 0:
                found.append((at, t))
                at = body.find(needle, at + len(needle))
        assert len(found) == 2 * SPANS_PER_BATCH, "a timestamp's bytes are not unique in the template"
        found.sort()
        self.pieces, self.times, pos = [], [], 0
        width = len(self._encode_times([times[0]])[0])
        for at, t in found:
            self.pieces.append(body[pos:at])
            self.times.append(t)
            pos = at + width
        self.tail = body[pos:]
        self._body, self._shift = body, 0

    def _encode_times(self, times: list[int]) -> list[bytes]:
        if self.encoding == "protobuf":
            packed = struct.pack(f"<{len(times)}Q", *times)
            return [packed[i : i + 8] for i in range(0, len(packed), 8)]
        return [str(t).encode() for t in times]  # the digits, quoted or not

    def next(self) -> tuple[bytes, str]:
        """A new batch and one of its trace ids."""
        prefix = os.urandom(8)
        new = prefix if self.encoding == "protobuf" else prefix.hex().upper().encode()
        trace_id = prefix.hex() + (1).to_bytes(8, "big").hex()
        shift = (time.time_ns() - self.base_ns) // _TIME_STEP_NS * _TIME_STEP_NS
        if shift != self._shift:  # re-stamped every 10 ms: the sender's CPU goes to sending
            stamps = self._encode_times([t + shift for t in self.times])
            parts = [part for pair in zip(self.pieces, stamps, strict=True) for part in pair]
            self._body, self._shift = b"".join(parts) + self.tail, shift
        return self._body.replace(self.mark, new), trace_id

    @property
    def content_type(self) -> str:
        return "application/x-protobuf" if self.encoding == "protobuf" else "application/json"


def generate_batches(total_spans: int, start_ns: int, spread_ns: int, seed: int = 7):
    """Yield lists of ~512 model spans (32 traces of 16) whose traces start evenly over
    ``spread_ns`` from ``start_ns``; attributes as in :func:`template`."""
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
