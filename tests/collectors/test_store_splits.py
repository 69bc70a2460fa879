"""Any split of traces into batches reads back as the traces sent whole.

An exporter's batch processor cuts a trace wherever its queue happens to flush, the
parts arrive in any order, a batch may hold parts of several traces, and a batch whose
answer was lost is sent again, whole or merged with newer spans. Whatever the cut, the
order and the re-sends, every read must answer as if each trace had come in one batch:
the spans field by field, the summaries (span and error counts, services, root, start,
end, why it failed), the services and operations, the dependency edges and their counts,
and the trace searches by service, operation, tag and status.

Hypothesis draws the scenarios. Each one is written whole to one store and in batches to
another (both on the backend under test), under trace ids, service names and a time
window of its own, so the two stores' answers to every read are compared directly.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.model import BYTES_MARKER, STATUS_ERROR, Resource, Span, SpanEvent, SpanLink
from collectors.store import SpanStore, TraceList, TraceQuery
from tests.conftest import backend_of, fresh_database

MS = 1_000_000
MINUTE = 60_000 * MS
T0 = 1_700_000_040 * 1_000_000_000  # on a minute boundary
RECEIVED_NS = T0 + 10**15
"""Every batch of both stores is received at this time, so summaries may be compared whole."""

_scenarios = itertools.count(1)


@pytest.fixture
def reference(database_url: str, tmp_path: Path) -> Iterator[SpanStore]:
    """A second fresh store on the backend under test: where each trace is sent whole."""
    with fresh_database(backend_of(database_url), tmp_path, "reference") as url:
        store = SpanStore.from_url(url)
        try:
            yield store
        finally:
            store.close()


# -- scenarios ------------------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8)
_scalars = st.one_of(
    _text,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.binary(max_size=6).map(lambda b: {BYTES_MARKER: base64.b64encode(b).decode()}),
)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=5
)
_KEYS = ("user", "cart", "retries", "ratio", "payload", "region")
_attributes = st.dictionaries(st.sampled_from(_KEYS), _values, max_size=3)
# HTTP statuses, 4xx and 429 included: a call is judged alike whichever of its two spans
# records them and whichever arrives last.
_conventions = st.fixed_dictionaries(
    {},
    optional={
        "http.response.status_code": st.sampled_from([200, 404, 429, 500]),
        "peer.service": st.sampled_from(["billing", "search"]),
        "db.system": st.sampled_from(["postgresql", "redis"]),
        "messaging.system": st.just("kafka"),
    },
)
_NAMES = ("GET /cart", "POST /pay", "SELECT", "publish order", "process order")


@dataclass
class Scenario:
    """The spans of one scenario, the batches they are sent in, and its labels."""

    number: int
    spans: list[Span]
    batches: list[list[Span]] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"s{self.number}-"

    @property
    def window(self) -> tuple[int, int]:
        start = T0 + self.number * 10 * MINUTE
        return start, start + 5 * MINUTE - 1

    @property
    def trace_ids(self) -> list[str]:
        return sorted({s.trace_id for s in self.spans})


def _resource(draw: st.DrawFn, prefix: str) -> Resource:
    service = prefix + draw(st.sampled_from(["front", "back", "store"]))
    attrs = {"service.name": service, **draw(st.dictionaries(st.sampled_from(["host", "zone"]), _values, max_size=2))}
    scope = draw(st.sampled_from([("http", "1.0"), ("db", ""), ("", "")]))
    return Resource(service, attrs, *scope, draw(st.dictionaries(st.just("lib"), _values, max_size=1)))


def _trace(draw: st.DrawFn, scenario: int, trace: int, resources: list[Resource], start: int) -> list[Span]:
    """One trace: a tree of spans, with its root (span 0) or without (its parent never
    arrives), and now and then a span whose parent is missing."""
    trace_id = f"{scenario:08x}{trace:024x}"
    missing = f"{trace:04x}{0xDEAD:012x}"
    has_root = draw(st.booleans())
    out = []
    for i in range(draw(st.integers(1, 6))):
        if i == 0:
            parent = "" if has_root else missing
        else:
            parent = draw(st.sampled_from([f"{trace:04x}{p:012x}" for p in range(i)] + [missing]))
        error = draw(st.booleans())
        # Starts may tie, but never an error span's nor, in a trace without its root, any:
        # which of two tied spans is "the deepest error" or stands in for the root is open.
        tie_break = i + 1 if error or not has_root else 0
        begin = start + draw(st.integers(0, 40)) * MS + tie_break
        end = begin + draw(st.integers(0, 30 * MS))
        events = draw(
            st.lists(
                st.builds(
                    SpanEvent,
                    st.integers(0, end - begin).map(lambda d, begin=begin: begin + d),
                    st.sampled_from(["exception", "retry"]),
                    st.fixed_dictionaries(
                        {}, optional={"exception.type": _text, "exception.message": _text, "n": _values}
                    ),
                    st.integers(0, 3),
                ),
                max_size=2,
            )
        )
        out.append(
            Span(
                trace_id=trace_id,
                span_id=f"{trace:04x}{i:012x}",
                parent_span_id=parent,
                name=draw(st.sampled_from(_NAMES)),
                kind=draw(st.integers(0, 5)),
                start_ns=begin,
                end_ns=end,
                resource=draw(st.sampled_from(resources)),
                attributes={**draw(_attributes), **draw(_conventions)},
                events=tuple(events),
                status_code=STATUS_ERROR if error else draw(st.sampled_from([0, 1])),
                status_message=draw(_text) if draw(st.booleans()) else "",
                trace_state=draw(st.sampled_from(["", "k=v", "a=1,b=2"])),
                flags=draw(st.sampled_from([0, 1, 257, 2**32 - 1])),
                dropped_attributes_count=draw(st.integers(0, 3)),
                dropped_events_count=draw(st.integers(0, 3)),
                dropped_links_count=draw(st.integers(0, 3)),
            )
        )
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """One to three traces, some spans linking to others (a consumer to its producer,
    across traces too), cut into batches that mix the traces, with re-sends, in any order."""
    number = next(_scenarios)
    prefix = f"s{number}-"
    resources = [_resource(draw, prefix) for _ in range(draw(st.integers(1, 3)))]
    base = T0 + number * 10 * MINUTE + draw(st.integers(0, 59)) * 1000 * MS
    spans = []
    for trace in range(1, draw(st.integers(1, 3)) + 1):
        spans += _trace(draw, number, trace, resources, base + draw(st.integers(0, 20)) * MS)
    targets = [(s.trace_id, s.span_id) for s in spans] + [(f"{number:08x}{99:024x}", f"{99:016x}")]
    for s in spans:
        chosen = draw(st.lists(st.sampled_from(targets), max_size=2, unique=True))
        s.links = tuple(
            SpanLink(t, sid, draw(_attributes), draw(st.sampled_from(["", "x=1"]))) for t, sid in chosen
        )

    count = len(spans)
    parts = draw(st.integers(min(2, count), min(5, count)))
    owner = draw(st.lists(st.integers(0, parts - 1), min_size=count, max_size=count))
    if parts > 1 and len(set(owner)) == 1:  # never the whole scenario in one batch
        owner[-1] = (owner[-1] + 1) % parts
    batches = [[s for s, o in zip(spans, owner, strict=True) if o == b] for b in range(parts)]
    batches = [b for b in batches if b]
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):  # a batch sent again whole
            batches.append(list(draw(st.sampled_from(batches))))
        else:  # a batch overlapping others: some spans already sent, maybe some new ones
            picked = draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=count, unique=True))
            batches.append([spans[i] for i in picked])
    batches = [draw(st.permutations(b)) for b in draw(st.permutations(batches))]
    return Scenario(number, spans, batches)


# -- reads ----------------------------------------------------------------------------------------


def _tag_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    return None


def _queries(scenario: Scenario) -> list[TraceQuery]:
    """Searches by each service, each operation, a few tags, status and duration."""
    start, end = scenario.window
    queries = [TraceQuery(start, end, limit=50), TraceQuery(start, end, status="error", limit=50)]
    queries += [TraceQuery(start, end, service=s, limit=50) for s in sorted({s.service for s in scenario.spans})]
    ops = sorted({(s.service, s.name) for s in scenario.spans})
    queries += [TraceQuery(start, end, service=sv, operation=op, limit=50) for sv, op in ops[:4]]
    tags = {("error", "true")}
    for s in scenario.spans:
        for key, value in [*s.attributes.items(), *s.resource.attributes.items()]:
            if key != "service.name" and (text := _tag_text(value)) is not None:
                tags.add((key, text))
    queries += [TraceQuery(start, end, tags=dict([t]), limit=50) for t in sorted(tags)[:4]]
    longest = max(s.end_ns - s.start_ns for s in scenario.spans)
    queries.append(TraceQuery(start, end, min_duration_ns=longest, limit=50))
    return queries


def _found(result: TraceList) -> tuple[list, bool]:
    """A search's traces, newest first; traces starting together in trace id order (their
    order among themselves is not part of the contract), each once."""
    starts = [t.start_ns for t in result.traces]
    assert starts == sorted(starts, reverse=True)
    assert len(set(result.traces)) == len(result.traces), "a trace is listed twice"
    return sorted(result.traces, key=lambda t: (-t.start_ns, t.trace_id)), result.truncated


def _reads(store: SpanStore, scenario: Scenario) -> Iterator[tuple[str, object]]:
    for trace_id in scenario.trace_ids:
        yield f"get_trace({trace_id})", store.get_trace(trace_id)
    yield "summaries", store.get_summaries(scenario.trace_ids)
    services = [s for s in store.list_services() if s.startswith(scenario.prefix)]
    yield "services", services
    yield "operations", [store.list_operations(s) for s in services]
    yield "dependencies", store.dependencies(*scenario.window)
    yield "edge stats", store.find_edge_stats(*scenario.window)
    for query in _queries(scenario):
        yield f"find_traces({query})", _found(store.find_traces(query))


# -- the property -----------------------------------------------------------------------------------


@pytest.mark.timeout(900)  # passing takes seconds; shrinking a failure may take Hypothesis' 5 minutes
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios())
def test_any_split_order_and_resend_reads_back_as_the_whole_traces(
    store: SpanStore, reference: SpanStore, scenario: Scenario
) -> None:
    reference.write_spans(scenario.spans, received_ns=RECEIVED_NS)
    as_sent = sorted(scenario.spans, key=lambda s: (s.trace_id, s.start_ns, s.span_id))
    assert [s for t in scenario.trace_ids for s in reference.get_trace(t)] == as_sent, "whole traces read back as sent"

    inserted = 0
    for batch in scenario.batches:
        result = store.write_spans(batch, received_ns=RECEIVED_NS)
        assert result.inserted + result.duplicates == len({s.span_id for s in batch})
        inserted += result.inserted
    assert inserted == len(scenario.spans), "each span is stored once, its re-sends counted as duplicates"

    for (what, split), (_, whole) in zip(_reads(store, scenario), _reads(reference, scenario), strict=True):
        assert split == whole, f"{what} differs between the split and the whole traces"


# -- split-dependences of the current store, pinned --------------------------------------------------
# Each test states what the property above demands and the store does not do yet. Strict,
# so that a store that does it turns the test red until its mark is removed, and with it
# the property's allowance, if any (in _found, and the HTTP statuses of _conventions).

FRONT = Resource("frontend", {"service.name": "frontend", "region": "eu"}, "http", "1.0")
BACK = Resource("backend", {"service.name": "backend"}, "http", "1.0")
WHOLE = (0, 2**62)


def _span(sid: int, parent: int | None, resource: Resource, start_ms: int, dur_ms: int, kind: int = 0, **kw) -> Span:
    return Span(
        trace_id=f"{1:032x}",
        span_id=f"{sid:016x}",
        parent_span_id=f"{parent:016x}" if parent else "",
        name="op",
        kind=kind,
        start_ns=T0 + start_ms * MS,
        end_ns=T0 + (start_ms + dur_ms) * MS,
        resource=resource,
        **kw,
    )


def test_a_trace_sent_in_two_batches_is_found_once_by_a_tag(store: SpanStore) -> None:
    store.write_spans([_span(1, None, FRONT, 0, 100)])
    store.write_spans([_span(2, 1, FRONT, 50, 10)])
    found = store.find_traces(TraceQuery(*WHOLE, tags={"region": "eu"}))
    assert [t.trace_id for t in found.traces] == [f"{1:032x}"]


def test_a_callees_4xx_judges_the_call_whichever_span_comes_last(store: SpanStore, reference: SpanStore) -> None:
    caller = _span(1, None, FRONT, 0, 100, kind=3, status_code=STATUS_ERROR)
    callee = _span(2, 1, BACK, 10, 80, kind=2, attributes={"http.response.status_code": 404})
    reference.write_spans([caller, callee])
    store.write_spans([callee])
    store.write_spans([caller])
    assert store.dependencies(*WHOLE) == reference.dependencies(*WHOLE)
    assert reference.dependencies(*WHOLE)[0].error_count == 0  # the callee's answer, not a failure


@pytest.mark.xfail(strict=True, reason="a service's or tag's entry starts at the batch's first span, not the trace's")
def test_a_window_starting_inside_a_trace_finds_it_whether_or_not_it_was_split(
    store: SpanStore, reference: SpanStore
) -> None:
    spans = [_span(1, None, FRONT, 0, 100), _span(2, 1, FRONT, 50, 10)]
    reference.write_spans(spans)
    for s in spans:
        store.write_spans([s])
    for query in (
        TraceQuery(T0 + 40 * MS, WHOLE[1], service="frontend"),
        TraceQuery(T0 + 40 * MS, WHOLE[1], tags={"region": "eu"}),
    ):
        assert store.find_traces(query) == reference.find_traces(query), query
