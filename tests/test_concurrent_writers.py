"""Several `spyglass serve` processes writing one database at once stay exact.

Two servers with two workers each share one store. Every trace is cut into three
fragments so that each of its service-to-service calls has its two spans in different
fragments; the fragments travel in batches of many traces, sent from several threads to
one server or the other, and a quarter of the batches is sent again to the other server
(an exporter retrying through another replica). Afterwards every span is stored once and
readable, every trace summary counts exactly its spans, errors and services, and the
dependency counts are exactly one per call. The second test sends through the
OpenTelemetry SDK's own exporters instead, one per service, spread over the two servers.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from collectors.store import SpanStore, TraceQuery
from tests.helpers import ServeProcess, pb_request

TRACES = 600
TRACES_PER_BATCH = 12
SENDERS = 8
SERVER, CLIENT = PbSpan.SPAN_KIND_SERVER, PbSpan.SPAN_KIND_CLIENT
CALLS = {("gateway", "orders"), ("orders", "payment"), ("orders", "inventory")}


def _trace(n: int, base_ns: int) -> tuple[str, list[list[dict]], set[str], int]:
    """Trace ``n``: its id, its spans cut into three fragments (lists of resource-spans
    items), its span ids and its error count. Each call's client and server spans sit in
    different fragments."""
    trace_id = f"{n + 1:032x}"
    start = base_ns + n * 1_000_000

    def span(i: int, service: str, name: str, kind: int, parent: int | None, error: bool = False) -> dict:
        d = {
            "trace_id": trace_id,
            "span_id": f"{n + 1:08x}{i:08x}",
            "parent": f"{n + 1:08x}{parent:08x}" if parent else None,
            "name": name,
            "kind": kind,
            "start": start + i * 1000,
            "end": start + 100_000 - i * 1000,
            "attributes": {"order.id": f"o-{n}"},
            "_service": service,
        }
        if error:
            d["status"] = (2, "card declined")
        return d

    declined = n % 5 == 0
    a = span(1, "gateway", "POST /api/orders", SERVER, None)
    b = span(2, "gateway", "POST orders", CLIENT, 1)
    c = span(3, "orders", "POST /orders", SERVER, 2)
    d = span(4, "orders", "POST payment", CLIENT, 3, error=declined)
    e = span(5, "payment", "POST /charge", SERVER, 4, error=declined)
    f = span(6, "orders", "POST inventory", CLIENT, 3)
    g = span(7, "inventory", "POST /reserve", SERVER, 6)
    fragments = [[a, c, f], [b, e], [d, g]]
    items = []
    for fragment in fragments:
        by_service: dict[str, list[dict]] = {}
        for s in fragment:
            by_service.setdefault(s["_service"], []).append({k: v for k, v in s.items() if k != "_service"})
        items.append([{"service": svc, "spans": spans} for svc, spans in by_service.items()])
    ids = {s["span_id"] for s in (a, b, c, d, e, f, g)}
    return trace_id, items, ids, 2 if declined else 0


def test_two_servers_writing_one_store_keep_every_span_summary_and_edge_exact(
    tmp_path: Path, database_url: str
) -> None:
    SpanStore.from_url(database_url).close()  # the schema exists before either server starts
    base_ns = time.time_ns() - 300 * 1_000_000_000
    traces = [_trace(n, base_ns) for n in range(TRACES)]
    batches = []
    for part in range(3):
        for i in range(0, TRACES, TRACES_PER_BATCH):
            items = [item for _, fragments, _, _ in traces[i : i + TRACES_PER_BATCH] for item in fragments[part]]
            batches.append(pb_request(items).SerializeToString())
    rng = random.Random(7)
    sends = [(body, i % 2) for i, body in enumerate(batches)]
    sends += [(body, 1 - i % 2) for i, body in enumerate(batches) if i % 4 == 0]
    rng.shuffle(sends)

    servers = []
    try:
        for name in ("a", "b"):
            servers.append(
                ServeProcess(tmp_path / name, "--database-url", database_url, "--workers", "2")
            )

        def send(item: tuple[bytes, int]) -> int:
            body, target = item
            response = requests.post(
                servers[target].otlp + "/v1/traces",
                data=body,
                headers={"Content-Type": "application/x-protobuf"},
                timeout=60,
            )
            return response.status_code

        with ThreadPoolExecutor(SENDERS) as pool:
            statuses = Counter(pool.map(send, sends))
        assert statuses == Counter({200: len(sends)}), "every batch is acknowledged, none needs a retry"

        ui = servers[0].ui
        unreadable, wrong_spans = [], []
        for trace_id, _, ids, _ in traces:
            response = requests.get(f"{ui}/api/traces/{trace_id}", timeout=10)
            if response.status_code != 200:
                unreadable.append((trace_id, response.status_code))
                continue
            got = [s["spanID"] for s in response.json()["data"][0]["spans"]]
            if sorted(got) != sorted(ids):
                wrong_spans.append((trace_id, len(got)))
        assert not unreadable, f"{len(unreadable)} traces unreadable, e.g. {unreadable[:3]}"
        assert not wrong_spans, f"{len(wrong_spans)} traces with missing or doubled spans, e.g. {wrong_spans[:3]}"

        store = SpanStore.from_url(database_url, migrate=False, background_checkpoints=False)
        try:
            found = store.find_traces(TraceQuery(start_ns=base_ns - 10**9, end_ns=time.time_ns(), limit=TRACES))
        finally:
            store.close()
        summaries = {t.trace_id: t for t in found.traces}
        assert len(summaries) == TRACES
        wrong = [
            (t.trace_id, t.span_count, t.error_count, t.services)
            for trace_id, _, ids, errors in traces
            if (t := summaries[trace_id]).span_count != len(ids)
            or t.error_count != errors
            or set(t.services) != {"gateway", "orders", "payment", "inventory"}
            or t.root_service != "gateway"
        ]
        assert not wrong, f"{len(wrong)} summaries wrong, e.g. {wrong[:3]}"

        deps = requests.get(f"{ui}/api/dependencies", timeout=10).json()["data"]
        counts = {(d["parent"], d["child"]): d["callCount"] for d in deps}
        assert counts == {call: TRACES for call in CALLS}
    finally:
        for server in servers:
            server.stop()


EXPORTED_TRACES = 60


def test_real_exporters_of_services_split_over_two_servers_store_every_trace_exactly(
    tmp_path: Path, database_url: str
) -> None:
    """The OpenTelemetry SDK's own OTLP/HTTP exporters, one per service, half of them sending
    to one server and half to the other (2 workers each): each trace's spans arrive through
    both servers at once, from several threads, and are stored once, summed and counted
    exactly."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    SpanStore.from_url(database_url).close()
    servers: list[ServeProcess] = []
    providers: dict[str, TracerProvider] = {}
    try:
        for name in ("a", "b"):
            servers.append(ServeProcess(tmp_path / name, "--database-url", database_url, "--workers", "2"))
        for i, service in enumerate(("gateway", "orders", "payment", "inventory")):
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            exporter = OTLPSpanExporter(endpoint=servers[i % 2].otlp + "/v1/traces", timeout=30)
            processor = BatchSpanProcessor(exporter, max_export_batch_size=50, schedule_delay_millis=50)
            provider.add_span_processor(processor)
            providers[service] = provider

        def call(caller: str, callee: str, name: str, error: bool = False) -> None:
            with providers[caller].get_tracer("test").start_as_current_span(f"POST {callee}", kind=SpanKind.CLIENT):
                with providers[callee].get_tracer("test").start_as_current_span(name, kind=SpanKind.SERVER) as span:
                    if error:
                        span.set_status(Status(StatusCode.ERROR, "card declined"))

        def one_order(n: int) -> tuple[str, int]:
            tracer = providers["gateway"].get_tracer("test")
            with tracer.start_as_current_span("POST /api/orders", kind=SpanKind.SERVER) as root:
                with tracer.start_as_current_span("POST orders", kind=SpanKind.CLIENT):
                    with providers["orders"].get_tracer("test").start_as_current_span(
                        "POST /orders", kind=SpanKind.SERVER
                    ):
                        call("orders", "payment", "POST /charge", error=n % 4 == 0)
                        call("orders", "inventory", "POST /reserve")
            return format(root.get_span_context().trace_id, "032x"), 1 if n % 4 == 0 else 0

        with ThreadPoolExecutor(4) as pool:
            orders = list(pool.map(one_order, range(EXPORTED_TRACES)))
        for provider in providers.values():
            assert provider.force_flush(60_000)

        ui = servers[1].ui
        for trace_id, _errors in orders:
            spans = requests.get(f"{ui}/api/traces/{trace_id}", timeout=10).json()["data"][0]["spans"]
            ids = [s["spanID"] for s in spans]
            assert len(ids) == 7 and len(set(ids)) == 7, (trace_id, ids)
        store = SpanStore.from_url(database_url, migrate=False, background_checkpoints=False)
        try:
            found = store.find_traces(
                TraceQuery(start_ns=time.time_ns() - 600 * 10**9, end_ns=time.time_ns(), limit=EXPORTED_TRACES * 2)
            )
        finally:
            store.close()
        summaries = {t.trace_id: t for t in found.traces}
        assert len(summaries) == EXPORTED_TRACES
        for trace_id, errors in orders:
            summary = summaries[trace_id]
            assert (summary.span_count, summary.error_count, summary.root_service) == (7, errors, "gateway")
            assert set(summary.services) == {"gateway", "orders", "payment", "inventory"}
        deps = requests.get(f"{ui}/api/dependencies", timeout=10).json()["data"]
        assert {(d["parent"], d["child"]): d["callCount"] for d in deps} == {call: EXPORTED_TRACES for call in CALLS}
    finally:
        for provider in providers.values():
            provider.shutdown()
        for server in servers:
            server.stop()


SERVERS_AT_ONCE = 4


def test_servers_started_at_once_on_an_empty_database_all_come_up_on_one_store(
    tmp_path: Path, database_url: str
) -> None:
    """Replicas started together (docker compose up --scale spyglass=4) on a database no
    Spyglass has opened yet: each upgrades the schema or waits for the one that does, every
    one of them answers, and a trace sent to any of them reads back from every other."""
    with ThreadPoolExecutor(SERVERS_AT_ONCE) as pool:
        starts = [
            pool.submit(ServeProcess, tmp_path / f"replica-{n}", "--database-url", database_url)
            for n in range(SERVERS_AT_ONCE)
        ]
    try:
        failed = [str(start.exception()) for start in starts if start.exception() is not None]
        assert not failed, f"{len(failed)} of {SERVERS_AT_ONCE} servers did not come up:\n" + "\n".join(failed)
        servers = [start.result() for start in starts]
        base_ns = time.time_ns() - 60 * 1_000_000_000
        sent = {}
        for n, server in enumerate(servers):
            trace_id = f"{0xA0 + n:032x}"
            span = {"trace_id": trace_id, "span_id": f"{n + 1:016x}", "name": f"via replica {n}"}
            span |= {"start": base_ns + n, "end": base_ns + n + 1000}
            body = pb_request([{"service": "gateway", "spans": [span]}]).SerializeToString()
            response = requests.post(
                server.otlp + "/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=30
            )
            assert response.status_code == 200, response.text
            sent[trace_id] = span["name"]
        for server in servers:
            for trace_id, name in sent.items():
                response = requests.get(f"{server.ui}/api/traces/{trace_id}", timeout=10)
                assert response.status_code == 200, (server.ui, trace_id, response.text)
                assert [s["operationName"] for s in response.json()["data"][0]["spans"]] == [name]
    finally:
        for start in starts:
            if start.exception() is None:
                start.result().stop()
