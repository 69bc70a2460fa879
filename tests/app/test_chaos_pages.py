"""The chaos lab without a demo, with auth, and its judgement on spans that break a pattern."""

from __future__ import annotations

import pytest

from app import create_app
from app.analysis import chaos as judge
from app.settings import Settings
from collectors.model import KIND_CLIENT, KIND_SERVER, STATUS_ERROR, STATUS_OK, Resource, Span
from collectors.store import SpanStore
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
