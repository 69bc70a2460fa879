"""The chaos lab without a demo, with auth, and its judgement on spans that break a pattern."""

from __future__ import annotations

import time

import pytest

from app import create_app
from app.analysis import chaos as judge
from app.settings import Settings
from collectors.model import KIND_CLIENT, KIND_CONSUMER, KIND_SERVER, STATUS_ERROR, STATUS_OK, Resource, Span
from collectors.store import SpanStore
from collectors.store.experiments import DONE, Experiment
from demo_services.protocol import CONTROL_TOKEN_HEADER
from tests.helpers import free_port

CONTROL = "c0ffee" * 5


@pytest.fixture(name="settings")
def no_demo_settings(tmp_path, database_url: str) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        prune_interval_s=0,
        registry_url=f"http://127.0.0.1:{free_port()}",
    )


def test_without_a_demo_the_page_says_so_and_how_to_start_it(client):
    page = client.get("/chaos")
    assert page.status_code == 200
    assert "No demo to experiment on" in page.text and "spyglass demo" in page.text
    assert "Run payment declined" not in page.text
    assert 'id="scenario-payment-declined"' in page.text, "the scenarios are described even without a demo"


def test_with_a_token_but_no_registry_a_run_ends_failed_saying_why(settings, store: SpanStore, monkeypatch):
    monkeypatch.setenv("SPYGLASS_DEMO_CONTROL_TOKEN", CONTROL)
    app = create_app(settings, store=store)
    client = app.test_client()
    headers = {CONTROL_TOKEN_HEADER: CONTROL}
    started = client.post("/api/v1/experiments", json={"scenario": "happy-order"}, headers=headers)
    assert started.status_code == 202
    app.extensions["spyglass.chaos_runner"].wait(30)
    result = client.get(f"/api/v1/experiments/{started.json['id']}").json
    assert result["status"] == "done" and result["verdict"] == "failed"
    assert result["checks"][0]["name"] == "the scenario ran to the end"
    assert "unreachable" in result["checks"][0]["detail"]


def test_with_auth_a_post_needs_the_bearer_token_as_well(settings, store: SpanStore, monkeypatch):
    monkeypatch.setenv("SPYGLASS_DEMO_CONTROL_TOKEN", CONTROL)
    client = create_app(settings.replace(auth_token="s3cret"), store=store).test_client()
    body = {"scenario": "no-such-scenario"}
    without = client.post("/api/v1/experiments", json=body, headers={CONTROL_TOKEN_HEADER: CONTROL})
    assert without.status_code == 401
    with_both = client.post(
        "/api/v1/experiments",
        json=body,
        headers={CONTROL_TOKEN_HEADER: CONTROL, "Authorization": "Bearer s3cret"},
    )
    assert with_both.status_code == 404 and "unknown scenario" in with_both.text
    bearer_only = client.post("/api/v1/experiments", json=body, headers={"Authorization": "Bearer s3cret"})
    assert bearer_only.status_code == 403


_RESOURCE = Resource("orders")


def _span(span_id: str, name: str, start: int, status: int = STATUS_OK, **attributes) -> Span:
    return Span(
        trace_id="ab" * 16,
        span_id=span_id,
        parent_span_id="",
        name=name,
        kind=KIND_SERVER if name == "root" else KIND_CLIENT,
        start_ns=start,
        end_ns=start + 10,
        resource=_RESOURCE,
        attributes=attributes,
        status_code=status,
    )


def _saga(compensated: list[str]) -> dict[str, list[Span]]:
    base = {"saga.id": "s1", "saga.name": "order"}
    spans = [
        _span("0000000000000001", "saga order", 0, STATUS_ERROR, **base, **{"saga.outcome": "compensated"}),
        _span("0000000000000002", "a", 1, **base, **{"saga.step": "create_order", "saga.phase": "action"}),
        _span("0000000000000003", "a", 2, **base, **{"saga.step": "reserve_payment", "saga.phase": "action"}),
        _span(
            "0000000000000004", "a", 3, STATUS_ERROR, **base, **{"saga.step": "reserve_inventory", "saga.phase": "action"}
        ),
    ]
    for i, step in enumerate(compensated):
        spans.append(
            _span(f"00000000000001{i:02d}", "c", 10 + i, **base, **{"saga.step": step, "saga.phase": "compensation"})
        )
    return {"ab" * 16: spans}


def test_the_reverse_compensation_check_holds_only_for_exactly_the_completed_steps_newest_first():
    def holds(compensated: list[str]) -> bool:
        checks = judge.check_reverse_compensation(judge.sagas(_saga(compensated)), "reserve_inventory")
        return checks[1].passed

    assert holds(["reserve_payment", "create_order"])
    assert not holds(["create_order", "reserve_payment"])  # wrong order
    assert not holds(["create_order"])  # a compensation skipped
    assert not holds(["reserve_payment", "create_order", "create_order"])  # one twice


def test_the_breaker_cycle_needs_open_then_half_open_then_closed():
    full = [(1, "closed", "open"), (5, "open", "half_open"), (6, "half_open", "closed")]
    assert all(c.passed for c in judge.check_breaker_cycle(full))
    assert [c.passed for c in judge.check_breaker_cycle(full[:2])] == [True, True, False]
    assert [c.passed for c in judge.check_breaker_cycle([])] == [False, False, False]


def test_an_event_processed_twice_or_before_the_consumer_was_back_fails_its_check():
    produced = {"m1": _span("0000000000000201", "publish", 0), "m2": _span("0000000000000202", "publish", 0)}
    once = {"m1": [_span("0000000000000301", "process", 50)], "m2": [_span("0000000000000302", "process", 60)]}
    assert all(c.passed for c in judge.check_outbox_waited(produced, once, back_ns=40))
    twice = {**once, "m2": [*once["m2"], _span("0000000000000303", "process", 70)]}
    assert [c.passed for c in judge.check_outbox_waited(produced, twice, back_ns=40)] == [True, True, True, False]
    early = [c.passed for c in judge.check_outbox_waited(produced, once, back_ns=55)]
    assert early == [True, False, True, True]
    lost = {"m1": once["m1"]}
    assert [c.passed for c in judge.check_outbox_waited(produced, lost, back_ns=40)] == [True, False, False, False]


def test_an_event_with_two_subscribers_counts_once_per_consumer():
    def consumer(service: str, span_id: str) -> Span:
        return Span(
            "cd" * 16,
            span_id,
            "",
            "process OrderPlaced",
            KIND_CONSUMER,
            50,
            60,
            Resource(service),
            attributes={"messaging.message.id": "m1"},
        )

    traces = {"cd" * 16: [consumer("notifications", "0000000000000401"), consumer("shipping", "0000000000000402")]}

    assert len(judge.consumer_spans(traces)["m1"]) == 2
    assert [s.service for s in judge.consumer_spans(traces, "notifications")["m1"]] == ["notifications"]
    assert judge.consumer_spans(traces, "payment") == {}


SECOND = 1_000_000_000
MS = 1_000_000


def _entry(service: str, n: int, start: int, duration: int, *, failed: bool = False, kind: int = KIND_SERVER) -> Span:
    return Span(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        parent_span_id="",
        name="GET /x",
        kind=kind,
        start_ns=start,
        end_ns=start + duration,
        resource=Resource(service),
        attributes={},
        status_code=STATUS_ERROR if failed else STATUS_OK,
    )


def _experiment_restored_at(store: SpanStore, started: int, restored: int, **findings: object) -> str:
    changes = [{"instance_id": "payment", "service": "payment", "decline": True}]
    experiment = Experiment(
        "e-red",
        "payment-declined",
        DONE,
        "h",
        "passed",
        "127.0.0.1",
        started,
        restored + SECOND,
        changes,
        findings={"restored_ns": restored, **findings},
    )
    store.start_experiment(experiment, exclusive=False)
    return experiment.id


def _cells(page: str, service: str, metric: str) -> list[str]:
    table = page[page.index(f'data-service="{service}"') :]
    row = table[table.index(f'class="metric-{metric}"') :]
    cells = []
    for phase in ("before", "during", "after"):
        start = row.index(f'class="phase-{phase}">') + len(f'class="phase-{phase}">')
        cells.append(row[start : row.index("</td>", start)])
    return cells


def test_the_result_page_shows_each_affected_services_red_before_during_and_after(client, store: SpanStore):
    started = time.time_ns() - 100 * SECOND
    restored = started + 4 * SECOND
    spans = [_entry("gateway", 1 + i, started - 30 * SECOND + i * SECOND, 10 * MS) for i in range(3)]
    spans += [
        _entry("gateway", 100 + i, started + i * 400 * MS, (i + 1) * 100 * MS, failed=i % 2 == 0) for i in range(8)
    ]
    spans += [_entry("gateway", 200 + i, restored + i * SECOND, 20 * MS) for i in range(6)]
    spans.append(_entry("gateway", 300, started - 40 * SECOND, 10 * MS))  # before "before": not counted
    spans.append(_entry("gateway", 301, started + SECOND, 5 * SECOND, kind=KIND_CLIENT))  # not an entry span
    spans.append(_entry("payment", 400, started + SECOND, 30 * MS, failed=True))
    store.write_spans(spans)
    experiment_id = _experiment_restored_at(store, started, restored)

    page = client.get(f"/chaos/experiments/{experiment_id}").text

    assert "Before, during and after" in page and "still collecting" not in page
    assert _cells(page, "gateway", "rate") == ["0.10/s", "2.00/s", "0.20/s"]
    assert _cells(page, "gateway", "error_pct") == ["0 %", "50 %", "0 %"]
    assert _cells(page, "gateway", "p50_ms") == ["10.0 ms", "400.0 ms", "20.0 ms"]
    assert _cells(page, "gateway", "p99_ms") == ["10.0 ms", "800.0 ms", "20.0 ms"]
    assert _cells(page, "payment", "error_pct") == ["0 %", "100 %", "0 %"]
    assert _cells(page, "payment", "rate") == ["0.00/s", "0.25/s", "0.00/s"]
    assert page.count("<svg") == 8 and "<script" not in page.split("<main", 1)[-1]
    assert "data-live" not in page


def test_after_a_recent_run_the_after_phase_is_still_collecting_and_the_page_refreshes(client, store: SpanStore):
    restored = time.time_ns() - 5 * SECOND
    store.write_spans([_entry("gateway", 1, restored - SECOND, 10 * MS), _entry("gateway", 2, restored + SECOND, MS)])
    experiment_id = _experiment_restored_at(store, restored - 2 * SECOND, restored)

    page = client.get(f"/chaos/experiments/{experiment_id}").text

    assert _cells(page, "gateway", "rate") == ["0.00/s", "0.50/s", "still collecting"]
    assert "data-live" in page and 'hx-trigger="every 2s"' in page


def test_the_affected_services_are_those_the_runs_traces_touched_in_the_order_kept(client, store: SpanStore):
    started = time.time_ns() - 100 * SECOND
    restored = started + 4 * SECOND
    touched = ["gateway", "orders", "payment", "inventory"]
    store.write_spans([_entry(service, 10 + i, started + SECOND, 20 * MS) for i, service in enumerate(touched)])
    store.write_spans([_entry("shipping", 20, started + SECOND, 20 * MS)])  # not touched by the run
    experiment_id = _experiment_restored_at(store, started, restored, services=touched)

    page = client.get(f"/chaos/experiments/{experiment_id}").text

    shown = [part.split('"', 1)[0] for part in page.split('data-service="')[1:]]
    assert shown == touched
    assert _cells(page, "inventory", "rate") == ["0.00/s", "0.25/s", "0.00/s"]


def _limited(n: int, **attributes) -> Span:
    return Span(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        parent_span_id="",
        name="GET /api/products",
        kind=KIND_SERVER,
        start_ns=n,
        end_ns=n + 10,
        resource=Resource("gateway"),
        attributes={"http.response.status_code": 429, **attributes},
    )


def test_every_429_must_have_recorded_its_retry_after_on_the_entry_span():
    said = {f"t{n}": [_limited(n, **{"http.response.header.retry_after": ["1"]})] for n in range(1, 4)}
    check = judge.check_retry_after(said)
    assert check.passed and check.detail.startswith("3 of 3")
    silent = {**said, "t9": [_limited(9)]}
    assert not judge.check_retry_after(silent).passed
    assert judge.check_retry_after(silent).detail.startswith("3 of 4")
    assert not judge.check_retry_after({}).passed


@pytest.mark.parametrize(
    ("launcher_url", "message"),
    [
        ("http://10.20.30.40:9009", "not a loopback address"),
        ("https://127.0.0.1:9009", "not a plain http URL"),
        (None, "could not be reached"),
    ],
)
def test_stop_without_a_reachable_loopback_launcher_is_a_400_saying_why(
    settings, store: SpanStore, monkeypatch, launcher_url, message
):
    monkeypatch.setenv("SPYGLASS_DEMO_CONTROL_TOKEN", CONTROL)
    url = launcher_url or f"http://127.0.0.1:{free_port()}"
    client = create_app(settings.replace(launcher_url=url), store=store).test_client()
    stopped = client.post("/chaos/stop", data={"instance_id": "payment"}, headers={CONTROL_TOKEN_HEADER: CONTROL})
    assert stopped.status_code == 400 and message in stopped.text
