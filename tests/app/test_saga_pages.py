"""The saga pages: counts by outcome, and a saga's time axis, failure reason and the steps
it never ran, from spans sent by the OpenTelemetry SDK."""

from __future__ import annotations

import json

from bs4 import BeautifulSoup
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.app import pattern_spans

HOSTILE = "<img src=x onerror=alert(1)>"


def html(client, path: str) -> BeautifulSoup:
    r = client.get(path)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return BeautifulSoup(r.get_data(as_text=True), "html.parser")


def declined_saga(factory, saga_id: str, exception_message: str = "card 4000 declined") -> tuple[str, str]:
    """create, then pay: orders calls payment, whose span records the exception; ship never
    runs. Returns (trace id, span id of payment's span)."""
    orders, payment = pattern_spans.tracer(factory, "orders"), pattern_spans.tracer(factory, "payment")
    base = {"saga.name": "order", "saga.id": saga_id}
    with orders.start_as_current_span("saga order", attributes=base) as root:
        with orders.start_as_current_span(
            "create", attributes={**base, "saga.step": "create", "saga.step.index": 0, "saga.phase": "action"}
        ):
            pass
        with orders.start_as_current_span(
            "pay", attributes={**base, "saga.step": "pay", "saga.step.index": 1, "saga.phase": "action"}
        ) as step:
            with orders.start_as_current_span("POST payment", kind=SpanKind.CLIENT) as call:
                with payment.start_as_current_span("POST /charge", kind=SpanKind.SERVER) as charge:
                    charge.record_exception(ValueError(exception_message))
                    charge.set_status(Status(StatusCode.ERROR))
                    cause = format(charge.get_span_context().span_id, "016x")
                call.set_status(Status(StatusCode.ERROR, "402 from payment"))
            step.set_status(Status(StatusCode.ERROR, "payment declined"))
        with orders.start_as_current_span(
            "undo create",
            attributes={**base, "saga.step": "create", "saga.step.index": 0, "saga.phase": "compensation"},
        ):
            pass
        root.set_attribute("saga.outcome", "compensated")
        return format(root.get_span_context().trace_id, "032x"), cause


def test_the_list_counts_sagas_by_outcome_each_a_filter(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "ok-1", ["create", "pay"], None)
    pattern_spans.saga(tracer_provider_factory, "ok-2", ["create", "pay"], None)
    pattern_spans.saga(tracer_provider_factory, "comp-1", ["create", "pay"], 1)
    soup = html(client, "/sagas?outcome=completed")
    counts = {li["data-outcome"]: li.select_one(".count").get_text() for li in soup.select("ul.outcome-counts li")}
    assert counts == {"completed": "2", "compensated": "1", "failed": "0", "running": "0"}
    links = [a["href"] for a in soup.select("ul.outcome-counts a")]
    assert links == [f"/sagas?outcome={o}" for o in ("completed", "compensated", "failed", "running")]
    assert html(client, "/sagas").select_one("ul.outcome-counts") is not None


def test_the_detail_has_a_time_axis_from_zero_at_round_steps(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "s-axis", ["create", "pay", "ship"], None)
    soup = html(client, "/sagas/s-axis")
    ticks = soup.select(".lane.axis .tick")
    assert len(ticks) >= 3 and ticks[0].get_text() == "0" and ticks[0]["style"] == "left: 0.000%"
    assert all(t.get_text().startswith("+") for t in ticks[1:])
    lefts = [float(t["style"].removeprefix("left: ").removesuffix("%")) for t in ticks]
    assert lefts == sorted(lefts) and lefts[-1] <= 100.0
    steps = [b - a for a, b in zip(lefts, lefts[1:])]
    # Evenly spaced, but for the page's rounding of each position to 3 decimals.
    assert max(steps) - min(steps) < 0.002, f"ticks are evenly spaced: {steps}"


def test_the_detail_names_the_deepest_error_as_the_failure_reason(client, tracer_provider_factory):
    trace_id, cause = declined_saga(tracer_provider_factory, "s-declined")
    soup = html(client, "/sagas/s-declined")
    reason = soup.select_one(".failure-reason")
    assert reason.select_one("strong").get_text() == "pay"
    assert reason.select_one(".reason").get_text() == "ValueError: card 4000 declined"
    link = reason.select_one("a")
    assert link.get_text() == "payment: POST /charge"
    assert link["href"] == f"/traces/{trace_id}?span={cause}"
    doc = json.loads(client.get("/api/v1/sagas/s-declined").get_data())
    assert doc["failure"]["reason"] == "ValueError: card 4000 declined" and doc["failure"]["span_id"] == cause


def test_a_failed_step_without_children_gives_its_own_status_message(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "s-own", ["create", "pay"], 1)
    reason = html(client, "/sagas/s-own").select_one(".failure-reason")
    assert reason.select_one(".reason").get_text() == "pay failed"
    assert reason.select_one("a").get_text() == "orders: pay"
    assert html(client, "/sagas/s-own").select_one(".failure-reason") is not None
    pattern_spans.saga(tracer_provider_factory, "s-fine", ["create", "pay"], None)
    assert html(client, "/sagas/s-fine").select_one(".failure-reason") is None


def test_steps_other_sagas_of_the_type_ran_are_drawn_greyed(client, tracer_provider_factory):
    pattern_spans.saga(tracer_provider_factory, "full-1", ["create", "pay", "ship", "notify"], None)
    pattern_spans.saga(tracer_provider_factory, "cut-1", ["create", "pay", "ship", "notify"], 1)
    pattern_spans.saga(tracer_provider_factory, "other-type", ["x", "y", "z"], None, name="refund")
    soup = html(client, "/sagas/cut-1")
    lanes = {lane["data-step"]: "never-ran" in lane["class"] for lane in soup.select(".lane[data-step]")}
    assert lanes == {"create": False, "pay": False, "ship": True, "notify": True}
    assert [lane["data-step"] for lane in soup.select(".lane[data-step]")] == ["create", "pay", "ship", "notify"]
    ghost = soup.select(".lane.never-ran")
    assert all(g.select_one(".ghost") is not None and g.select("a.bar") == [] for g in ghost)
    note = soup.select_one(".never-ran-note").get_text(" ", strip=True)
    assert note.startswith("2 steps never ran: ship , notify")
    assert json.loads(client.get("/api/v1/sagas/cut-1").get_data())["never_ran"] == ["ship", "notify"]
    assert html(client, "/sagas/full-1").select(".lane.never-ran") == []
    assert html(client, "/sagas/full-1").select_one(".never-ran-note") is None


def test_step_names_and_reasons_are_escaped(client, tracer_provider_factory):
    declined_saga(tracer_provider_factory, "s-hostile", exception_message=HOSTILE)
    pattern_spans.saga(tracer_provider_factory, "s-hostile-2", ["create", HOSTILE, "pay"], 0)
    for path in ("/sagas/s-hostile", "/sagas/s-hostile-2", "/sagas"):
        text = client.get(path).get_data(as_text=True)
        assert "<img src=x" not in text, path
    reason = html(client, "/sagas/s-hostile").select_one(".failure-reason .reason").get_text()
    assert reason == f"ValueError: {HOSTILE}"


def test_a_sagas_page_names_each_steps_kind_and_rules_off_the_pivot(client, tracer_provider_factory):
    orders = pattern_spans.tracer(tracer_provider_factory, "orders")
    base = {"saga.name": "order", "saga.id": "pivot-1"}
    kinds = [("reserve", "compensatable"), ("capture", "pivot"), ("confirm", HOSTILE)]
    with orders.start_as_current_span("saga order", attributes=base) as root:
        for i, (name, kind) in enumerate(kinds):
            attributes = {**base, "saga.step": name, "saga.step.index": i, "saga.phase": "action"}
            with orders.start_as_current_span(name, attributes={**attributes, "saga.step.kind": kind}):
                pass
        root.set_attribute("saga.outcome", "completed")

    soup = html(client, "/sagas/pivot-1")

    lanes = {lane["data-step"]: lane for lane in soup.select(".saga-timeline .lane[data-step]")}
    assert [lane.get("data-kind") for lane in lanes.values()] == ["compensatable", "pivot", HOSTILE]
    assert lanes["capture"].select_one(".step-kind").get_text() == "pivot"
    assert "pivot" in lanes["capture"]["class"] and "pivot" not in lanes["reserve"]["class"]
    assert lanes["confirm"].select_one(".step-kind").get_text() == HOSTILE  # text, not markup
    assert soup.select_one(".saga-timeline img") is None
    assert "point of no return" in soup.select_one(".legend").get_text()


def test_steps_that_never_ran_keep_the_kind_other_sagas_gave_them(client, tracer_provider_factory):
    orders = pattern_spans.tracer(tracer_provider_factory, "orders")
    kinds = [("reserve", "compensatable"), ("capture", "pivot"), ("confirm", "retriable")]
    for saga_id, fail_at in (("full", None), ("cut", 0)):
        base = {"saga.name": "order", "saga.id": saga_id}
        with orders.start_as_current_span("saga order", attributes=base) as root:
            for i, (name, kind) in enumerate(kinds):
                attributes = {**base, "saga.step": name, "saga.step.index": i, "saga.phase": "action"}
                with orders.start_as_current_span(name, attributes={**attributes, "saga.step.kind": kind}) as step:
                    if fail_at == i:
                        step.set_status(Status(StatusCode.ERROR, "no stock"))
                if fail_at == i:
                    break
            root.set_attribute("saga.outcome", "compensated" if fail_at is not None else "completed")
    soup = html(client, "/sagas/cut")
    never = {lane["data-step"]: lane.get("data-kind") for lane in soup.select(".lane.never-ran")}
    assert never == {"capture": "pivot", "confirm": "retriable"}
    assert "pivot" in soup.select_one(".lane[data-step='capture']")["class"]
