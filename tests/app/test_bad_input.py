"""No request value, however malformed, gets a 5xx.

Both property tests walk the app's URL map, so an endpoint added later is covered without
editing this file; the query parameters of each endpoint are found by sending it good
requests and recording which arguments its view reads. One sends each of a fixed set of
nasty values to every parameter and path segment of every endpoint; the other lets
Hypothesis combine such values (and good ones) at random. Values go out as a client puts
them on the wire: percent-encoded bytes, so a lone surrogate arrives as its three bytes
and invalid UTF-8 as itself. The regression tests at the end pin values that once
answered 500 on SQLite or PostgreSQL.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import ImmutableMultiDict

from app.settings import Settings
from collectors.store.experiments import DONE, Experiment
from tests.app import pattern_spans
from tests.helpers import free_port

HTMX = {"HX-Request": "true"}
_ARG = re.compile(r"<(?:([a-z]+):)?(\w+)>")

DEEP_LIST = "[" * 1200 + "]" * 1200
DEEP_OBJECT = '{"a":' * 1200 + "1" + "}" * 1200
CORE: list[str | bytes] = [
    str(2**63 - 1),
    str(-(2**63) - 1),
    "9" * 40,
    "a\x00b",
    "\ud800",
    DEEP_LIST,
    "x" * 20_000,
    b"\xff\xfe%",
    "0001-01-01T00:00",
    "9999-12-31T23:59",
]
"""Each is sent to every parameter and path segment of every endpoint."""

FIXED: list[str] = [
    str(2**63),
    str(2**64),
    str(-(2**63)),
    "-1",
    "0",
    "1e400",
    "nan",
    "9" * 5000,
    "99999999999999999999h",
    "0.000000001ns",
    "2262-04-12T00:00",
    "1969-12-31T23:59",
    "0001-01-01T00:00+01:00",
    "9999-12-31T23:59-14:00",
    DEEP_OBJECT,
    '{"a":"\\u0000"}',
    '{"a\\u0000":"b"}',
    "a=\x00 b=\ud800",
    "../../api/services",
    "%00",
    "%",
    "\x00",
]


@dataclass
class Sent:
    """Requests sent, and the first few bad answers with what caused them."""

    count: int = 0
    failures: list[str] = field(default_factory=list)


@pytest.fixture(name="settings")
def closed_registry_settings(tmp_path: Path, database_url: str) -> Settings:
    """Like the shared settings, with the registry pointed at a closed port (nothing answers)."""
    return Settings(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        prune_interval_s=0,
        registry_url=f"http://127.0.0.1:{free_port()}",
    )


@pytest.fixture
def seeded(tracer_provider_factory, store) -> dict[str, list[str]]:
    """A few real traces (calls, a breaker opening, two sagas) sent through the SDK;
    returns real values by path-argument name, for requests that reach deep."""
    traces = [
        pattern_spans.order_flow(tracer_provider_factory),
        pattern_spans.order_flow(tracer_provider_factory, fail_payment=True),
        pattern_spans.breaker_opens(tracer_provider_factory)[0],
        pattern_spans.saga(tracer_provider_factory, "saga-ok", ["pay", "ship"], None),
        pattern_spans.saga(tracer_provider_factory, "saga/../x?y#z", ["pay", "ship"], 1),
    ]
    spans = [s for t in traces for s in store.get_trace(t)]
    services = store.list_services()
    now_ns = time.time_ns()
    experiment = Experiment("e1", "manual", DONE, "", None, "127.0.0.1", now_ns, now_ns, [{"instance_id": "payment"}])
    store.start_experiment(experiment, exclusive=False)
    return {
        "experiment_id": [experiment.id],
        "trace_id": traces,
        "span_id": [s.span_id for s in store.get_trace(traces[0])],
        "service": [*services, "sqlite:orders.db", "outbox"],
        "name": [*services, "sqlite:orders.db"],
        "saga_id": ["saga-ok", "saga/../x?y#z"],
        "filename": ["app.css"],
        "operation": sorted({s.name for s in spans}),
    }


class _RecordingArgs(ImmutableMultiDict):
    """Query arguments that note every key a view asks for (while ``read`` is a set)."""

    read: set[str] | None = None

    def _note(self, key: object) -> None:
        if _RecordingArgs.read is not None and isinstance(key, str):
            _RecordingArgs.read.add(key)

    def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self._note(key)
        return super().get(key, *args, **kwargs)

    def getlist(self, key: str, *args: Any, **kwargs: Any) -> list:
        self._note(key)
        return super().getlist(key, *args, **kwargs)

    def __getitem__(self, key: str) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)


@dataclass(frozen=True)
class Endpoint:
    """One rule of the URL map: its pattern, a method, path arguments and query parameters."""

    endpoint: str
    rule: str
    method: str
    args: tuple[str, ...]
    params: tuple[str, ...]


def _wire(value: str | bytes, safe: str = "") -> str:
    """``value`` percent-encoded as a client sends it (lone surrogates as their bytes)."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote_from_bytes(raw, safe=safe)


def _url(rule: str, path_values: dict[str, str | bytes], query: list[tuple[str, str | bytes]]) -> str:
    def fill(m: re.Match) -> str:
        return _wire(path_values[m.group(2)], safe="/" if m.group(1) == "path" else "")

    path = _ARG.sub(fill, rule)
    if query:
        path += "?" + "&".join(f"{quote(k, safe='')}={_wire(v)}" for k, v in query)
    return path


def _endpoints(app, client, samples: dict[str, list[str]], good_params: dict[str, str]) -> list[Endpoint]:
    """Every rule with each of its methods, and the query parameters its view reads.

    Each is sent real path values, then again with a good value for each parameter it was
    seen to read (some read more once given those), until nothing new is read; every GET
    must end with a 200, which shows the values are real.
    """
    request_class = app.request_class
    app.request_class = type("RecordingRequest", (request_class,), {"parameter_storage_class": _RecordingArgs})
    found = []
    try:
        for rule in app.url_map.iter_rules():
            names = tuple(name for _, name in _ARG.findall(rule.rule))
            good = {name: samples.get(name, ["x"])[0] for name in names}
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                read: set[str] = set()
                while True:
                    _RecordingArgs.read = set()
                    url = _url(rule.rule, good, [(k, good_params[k]) for k in sorted(read) if k in good_params])
                    response = client.open(url, method=method)
                    if _RecordingArgs.read <= read:
                        break
                    read |= _RecordingArgs.read
                assert method != "GET" or response.status_code == 200, (url, response.get_data(as_text=True)[:300])
                found.append(Endpoint(rule.endpoint, rule.rule, method, names, tuple(sorted(read))))
    finally:
        _RecordingArgs.read = None
        app.request_class = request_class
    return found


def _send(client, sent: Sent, ep: Endpoint, path_values: dict, query: list, htmx: bool) -> str | None:
    """Send one request; what is wrong with its answer (also noted in ``sent``), or None."""
    url = _url(ep.rule, path_values, query)
    response = client.open(url, method=ep.method, headers=HTMX if htmx else {})
    sent.count += 1
    status = response.status_code
    problem = None
    if status >= 500:
        problem = f"{status} for {ep.method} {url[:300]} (htmx={htmx}): {response.get_data(as_text=True)[:300]}"
    elif status >= 400 and ep.endpoint.startswith("receiver."):
        # Ingest (Zipkin's /api/v2/spans on the OTLP port) refuses as OTLP/JSON does.
        doc = json.loads(response.get_data())
        if not (isinstance(doc, dict) and doc.get("code") and doc.get("message")):
            problem = f"{status} without a google.rpc.Status body for {url[:300]}: {doc}"
    elif status >= 400 and url.startswith("/api/"):
        doc = json.loads(response.get_data())
        if not (doc["data"] is None and doc["errors"] and doc["errors"][0]["msg"]):
            problem = f"{status} without a Jaeger error envelope for {url[:300]}: {doc}"
    if problem and len(sent.failures) < 20:
        sent.failures.append(problem)
    return problem


def _nasty() -> st.SearchStrategy:
    chars = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from("\x00%&=?#/<>\"'"))
    return st.one_of(
        st.sampled_from(CORE + FIXED),
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        st.integers(min_value=0, max_value=10**30).map(lambda n: f"{n}ms"),
        st.text(chars, max_size=40),
        st.binary(max_size=40),
        st.integers(min_value=1, max_value=5000).map(lambda n: "[" * n + "]" * n),
        st.integers(min_value=1000, max_value=60_000).map(lambda n: "é" * n),
        st.datetimes().map(lambda d: d.isoformat(timespec="minutes")),
    )


def _vocabulary(samples: dict[str, list[str]]) -> list[str]:
    """Good values for any parameter, so a request can get past its first check."""
    now_ns = time.time_ns()
    good = [v for values in samples.values() for v in values]
    return good + [
        "15m",
        "1h",
        "custom",
        "on",
        "off",
        "error",
        "any",
        "completed",
        "slowest",
        "1",
        "50",
        "true",
        "250ms",
        "2026-01-01T00:00",
        str(now_ns // 1000),
        str(now_ns // 1_000_000),
        '{"error":"true"}',
        "error=true",
        "server",
    ]


@pytest.fixture
def endpoints(app, client, seeded) -> list[Endpoint]:
    """The URL map, with parameters found by one good request each."""
    found = _endpoints(app, client, seeded, _good_params(seeded))
    by_name = {ep.endpoint: set(ep.params) for ep in found}
    # Discovery works: the known parameters of a few views were seen.
    assert {"service", "operation", "tags", "start", "end", "lookback", "traceID"} <= by_name["api.find_traces"]
    assert {"endTs", "lookback"} <= by_name["api.dependencies"]
    assert {"service", "range", "start", "end", "tags", "limit"} <= by_name["traces.search"]
    assert {"parent", "child", "window", "ago"} <= by_name["services.edge"]
    assert {"skew", "q", "span", "offset"} <= by_name["traces.rows"]
    return found


@pytest.fixture
def sent(request: pytest.FixtureRequest) -> Iterator[Sent]:
    """The request counter of one test, printed when it ends (run with -s to see it)."""
    counter = Sent()
    yield counter
    print(f"\n{request.node.name}: {counter.count} requests")


def _good_params(seeded: dict[str, list[str]]) -> dict[str, str]:
    """A value each query parameter of that name accepts, where one fits every endpoint
    using the name (``start``, ``tags`` or ``lookback`` differ between pages and API, so
    they have none): the rest of a request then gets past its own checks to the store."""
    traces, spans = seeded["trace_id"], seeded["span_id"]
    return {
        "service": "orders",
        "operation": "POST payment",
        "name": "orders",
        "id": "saga/../x?y#z",
        "parent": "orders",
        "child": "payment",
        "a": traces[0],
        "b": traces[1],
        "span": spans[0],
        "q": "POST",
        "skew": "off",
        "offset": "0",
        "window": "1h",
        "ago": "0",
        "limit": "5",
        "outcome": "compensated",
        "spanKind": "client",
        "status": "error",
        "sort": "slowest",
        "live": "1",
        "range": "6h",
        "min_duration": "1us",
        "max_duration": "10s",
        "minDuration": "1us",
        "maxDuration": "10s",
    }


def test_every_parameter_of_every_endpoint_survives_each_nasty_value(client, seeded, endpoints, sent):
    good = _good_params(seeded)
    for ep in endpoints:
        good_path = {name: seeded.get(name, ["x"])[0] for name in ep.args}
        good_query = [(name, good[name]) for name in ep.params if name in good]
        slots = [("path", name) for name in ep.args] + [("query", name) for name in ep.params]
        for where, name in slots:
            others = [(k, v) for k, v in good_query if k != name]
            for i, value in enumerate(CORE):
                path = {**good_path, name: value} if where == "path" else good_path
                alone = [(name, value)] if where == "query" else []
                # Alone, and among good values of the other parameters (which reaches further).
                _send(client, sent, ep, path, alone, htmx=i % 2 == 1)
                if others:
                    _send(client, sent, ep, path, others + alone, htmx=i % 2 == 0)
    assert not sent.failures, "\n".join(sent.failures)


EXAMPLES_PER_SLOT = 4
"""Random requests per parameter or path segment of an endpoint (at least one slot each)."""


def test_random_nasty_requests_never_get_a_server_error(client, seeded, endpoints, sent):
    """Per endpoint, a number of examples in proportion to its parameters and path segments.
    Each aims a generated nasty value at one of them; the others get good values, other
    values, nothing, or nasty ones too."""
    good = _good_params(seeded)
    vocabulary = _vocabulary(seeded)

    def requests_to(ep: Endpoint) -> Any:
        slots = [("path", name) for name in ep.args] + [("query", name) for name in (*ep.params, "unexpected")]

        @settings(
            max_examples=EXAMPLES_PER_SLOT * len(slots),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.data())
        def one_request(data: st.DataObject) -> None:
            target = data.draw(st.sampled_from(slots), label="target")
            path, query = {}, []
            for where, name in slots:
                if (where, name) == target:
                    values = [data.draw(_nasty(), label=name)]
                elif where == "path":
                    values = [data.draw(st.one_of(st.sampled_from(seeded.get(name, ["x"])), _nasty()), label=name)]
                else:
                    fitting = st.sampled_from([good[name]]) if name in good else st.nothing()
                    value = st.one_of(fitting, st.sampled_from(vocabulary), _nasty())
                    values = data.draw(st.lists(value, max_size=2), label=name)
                if where == "path":
                    path[name] = values[0]
                else:
                    query += [(name, v) for v in values]
            problem = _send(client, sent, ep, path, query, htmx=data.draw(st.booleans(), label="htmx"))
            assert problem is None, problem

        return one_request

    for ep in endpoints:
        requests_to(ep)()


# -- regression: each of these answered 500 before ----------------------------------------------

BIG = str(2**63 - 1)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"/api/traces?end={BIG}", "end must be an integer count of microseconds since the epoch"),
        (f"/api/traces?start={BIG}", "start must be an integer count of microseconds"),
        (f"/api/dependencies?endTs={BIG}", "endTs must be an integer count of milliseconds"),
        (f"/api/dependencies?lookback={BIG}", "lookback must be an integer count of milliseconds"),
        ("/api/traces?tags=" + DEEP_LIST, "tags must be a flat JSON object"),
        ("/api/services/orders%00x/operations", "service must not contain a NUL character"),
        ("/api/operations?service=orders%00x", "service must not contain a NUL character"),
        ("/api/traces?service=orders%00x", "service must not contain a NUL character"),
        ("/api/traces?service=orders&operation=POST%00", "operation must not contain a NUL character"),
        ("/api/v1/services/orders%00x", "service must not contain a NUL character"),
        ("/api/v1/sagas/saga%00x", "saga id must not contain a NUL character"),
    ],
)
def test_json_api_refuses_bad_values_with_a_jaeger_error(client, post_trace, path, message):
    post_trace("links")
    response = client.get(path)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    doc = json.loads(response.get_data())
    assert doc["data"] is None
    [error] = doc["errors"]
    assert error["code"] == 400 and message in error["msg"], error


def test_times_at_the_edge_of_the_store_are_still_answered(client, post_trace):
    post_trace("links")  # spans of 2023-11-14
    latest_us, latest_ms = (2**63 - 1) // 1000, (2**63 - 1) // 1_000_000
    doc = json.loads(client.get(f"/api/traces?start=0&end={latest_us}&service=orders").get_data())
    assert len(doc["data"]) == 1
    near = json.loads(client.get("/api/dependencies?endTs=1700000100000&lookback=3600000").get_data())
    assert [(d["parent"], d["child"]) for d in near["data"]] == [("orders", "notifications")]
    doc = json.loads(client.get(f"/api/dependencies?endTs={latest_ms}&lookback={latest_ms}").get_data())
    assert doc["data"] == near["data"]
    r = client.get(f"/api/traces?end={latest_us + 1}")
    assert r.status_code == 400 and f"from 0 to {latest_us} (2262-04-11)" in r.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("range=custom&start=0001-01-01T00:00&end=9999-12-31T23:59", "start must be between 1970-01-01T00:00"),
        ("range=custom&start=2024-01-01T00:00&end=9999-12-31T23:59", "end must be between 1970-01-01T00:00"),
        ("range=custom&start=0001-01-01T00:00%2B01:00", "start must be between"),
        ("service=orders%00x", "service must not contain a NUL character"),
        ("service=orders&operation=x%00", "operation must not contain a NUL character"),
    ],
)
def test_search_page_and_its_fragment_show_the_bad_field(client, post_trace, query, message):
    post_trace("links")
    page = client.get(f"/traces?{query}")
    assert page.status_code == 400
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    assert soup.find("form", class_="search-form") is not None, "the whole page, with its form"
    assert message in soup.select_one(".search-errors").get_text()
    fragment = client.get(f"/traces?{query}", headers=HTMX)
    assert fragment.status_code == 400
    html = fragment.get_data(as_text=True)
    assert "<html" not in html and "search-form" not in html and message in html


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/traces/operations?service=orders%00x", "service must not contain a NUL character"),
        ("/services/node?name=orders%00x", "name must not contain a NUL character"),
        ("/sagas/?id=saga%00x", "saga id must not contain a NUL character"),
        ("/services/edge?parent=orders%00x&child=notifications", "parent must not contain a NUL character"),
        ("/sagas/saga%00x", "saga id must not contain a NUL character"),
    ],
)
def test_pages_and_fragments_refuse_nul_in_names(client, post_trace, path, message):
    post_trace("links")
    page = client.get(path)
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "<html" in html and message in BeautifulSoup(html, "html.parser").get_text()
    fragment = client.get(path, headers=HTMX)
    assert fragment.status_code == 400
    assert fragment.headers["HX-Retarget"] == "#messages"
    html = fragment.get_data(as_text=True)
    assert "<html" not in html and message in BeautifulSoup(html, "html.parser").get_text()
