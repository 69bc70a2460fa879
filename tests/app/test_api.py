"""The Jaeger-compatible query API: shapes, parameters and the error envelope."""

from __future__ import annotations

import json

import pytest

from tests.collectors.test_store import MS, T0, checkout
from tests.conftest import jaeger_get


@pytest.fixture
def loaded(store):
    for i in range(1, 5):
        store.write_spans(checkout(i, error=i % 2 == 0, start=i * 1000 * MS))
    return store


def test_services_envelope(client, loaded):
    doc = jaeger_get(client, "/api/services")
    assert doc == {"data": ["backend", "frontend"], "total": 2, "limit": 0, "offset": 0, "errors": None}


def test_operations_both_endpoints(client, loaded):
    assert jaeger_get(client, "/api/services/backend/operations")["data"] == ["SELECT", "pay"]
    ops = jaeger_get(client, "/api/operations?service=backend")["data"]
    assert ops == [{"name": "SELECT", "spanKind": "client"}, {"name": "pay", "spanKind": "server"}]
    assert jaeger_get(client, "/api/operations?service=backend&spanKind=server")["data"] == [
        {"name": "pay", "spanKind": "server"}
    ]


def test_trace_by_id_accepts_upper_case_and_short_ids(client, loaded):
    doc = jaeger_get(client, f"/api/traces/{4:032X}")
    assert doc["data"][0]["traceID"] == f"{4:032x}"
    assert jaeger_get(client, "/api/traces/4")["data"][0]["traceID"] == f"{4:032x}"


def test_search_parameters(client, loaded):
    def ids(query: str) -> list[int]:
        return [int(t["traceID"], 16) for t in jaeger_get(client, "/api/traces?" + query)["data"]]

    start_us, end_us = T0 // 1000, (T0 + 10_000 * MS) // 1000
    window = f"start={start_us}&end={end_us}"
    assert ids(window) == [4, 3, 2, 1]
    assert ids(f"{window}&service=backend&operation=pay") == [4, 3, 2, 1]
    assert ids(f"{window}&tags=" + json.dumps({"error": "true"})) == [4, 2]
    assert ids(f"{window}&tags=" + json.dumps({"amount": 1999})) == [4, 3, 2, 1]
    assert ids(f"{window}&minDuration=90ms&service=backend") == []
    assert ids(f"{window}&maxDuration=0.02s&service=backend") == [4, 3, 2, 1]
    assert ids(f"{window}&limit=1") == [4]
    assert ids(f"start={(T0 + 1500 * MS) // 1000}&end={(T0 + 3500 * MS) // 1000}") == [3, 2]
    assert ids(f"traceID={1:032x}&traceID={3:x}") == [1, 3]


def test_search_result_spans_carry_processes(client, loaded):
    doc = jaeger_get(client, "/api/traces?start=0&service=backend&limit=1")
    [trace] = doc["data"]
    services = {p["serviceName"] for p in trace["processes"].values()}
    assert services == {"frontend", "backend"}
    assert all(s["processID"] in trace["processes"] for s in trace["spans"])


def test_dependencies(client, loaded):
    end_ms = (T0 + 10_000 * MS) // MS
    doc = jaeger_get(client, f"/api/dependencies?endTs={end_ms}&lookback=20000")
    assert doc["data"] == [{"parent": "frontend", "child": "backend", "callCount": 4}]
    assert jaeger_get(client, f"/api/dependencies?endTs={end_ms - 60_000}&lookback=1000")["data"] == []


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        (f"/api/traces/{'ab' * 16}", 404, "not found"),
        ("/api/traces/xyz", 400, "trace id must be 1 to 32 hexadecimal"),
        ("/api/traces/" + "a" * 33, 400, "trace id must be"),
        ("/api/traces?traceID=nothex", 400, "trace id"),
        ("/api/traces?limit=abc", 400, "limit must be an integer"),
        ("/api/traces?limit=-5", 400, "limit must be an integer"),
        ("/api/traces?minDuration=fast", 400, "minDuration must be a duration"),
        ("/api/traces?maxDuration=10parsecs", 400, "maxDuration must be a duration"),
        ("/api/traces?start=yesterday", 400, "start must be an integer"),
        ("/api/traces?tags=notjson", 400, "tags must be a JSON object"),
        ("/api/traces?tags=[1,2]", 400, "tags must be a JSON object"),
        ('/api/traces?tags={"k":[1]}', 400, "tag 'k' must have"),
        ("/api/traces?lookback=forever", 400, "lookback must be a duration"),
        ("/api/dependencies?endTs=now", 400, "endTs must be an integer"),
        ("/api/nothing-here", 404, "not found"),
    ],
)
def test_errors_use_the_jaeger_envelope(client, loaded, path, status, fragment):
    doc = jaeger_get(client, path, status=status)
    assert doc["data"] is None
    [error] = doc["errors"]
    assert error["code"] == status
    assert fragment.lower() in error["msg"].lower()


def test_huge_limit_is_capped_not_refused(client, store):
    from tests.collectors.test_store import FRONT, span

    store.write_spans([span(i, 1, None, FRONT, start=i) for i in range(1, 4)])
    doc = jaeger_get(client, "/api/traces?start=0&limit=99999999")
    assert len(doc["data"]) == 3


def test_pages_render_errors_as_html(client):
    r = client.get("/no/such/page")
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    assert b"404" in r.data


def test_htmx_errors_are_fragments_retargeted_at_the_message_area(client):
    r = client.get("/no/such/page", headers={"HX-Request": "true"})
    assert r.status_code == 404
    assert b"<html" not in r.data
    assert r.headers["HX-Retarget"] == "#messages"
