"""/breakers shows each breaker's settings as its spans record them, how long it has been
in its state, and a short open period wide enough to see; over SDK spans."""

from __future__ import annotations

import json
import time

from bs4 import BeautifulSoup
from opentelemetry.trace import SpanKind, Status, StatusCode

NAME = {"circuit_breaker.name": "orders->payment"}
SETTINGS = {"circuit_breaker.failure_threshold": 3, "circuit_breaker.reset_timeout_ms": 1500}


def open_briefly(factory) -> None:
    """Three failures open the breaker; 50 ms later a half-open trial closes it again."""
    orders = factory("orders").get_tracer("t")
    for i in range(3):
        with orders.start_as_current_span(
            "POST payment", kind=SpanKind.CLIENT, attributes={**NAME, **SETTINGS, "circuit_breaker.state": "closed"}
        ) as call:
            call.set_status(Status(StatusCode.ERROR, "timeout"))
            if i == 2:
                call.add_event(
                    "circuit_breaker.state_change",
                    {**NAME, "circuit_breaker.state.from": "closed", "circuit_breaker.state.to": "open"},
                )
    time.sleep(0.05)
    with orders.start_as_current_span(
        "POST payment", kind=SpanKind.CLIENT, attributes={**NAME, **SETTINGS, "circuit_breaker.state": "half_open"}
    ) as trial:
        for a, b in (("open", "half_open"), ("half_open", "closed")):
            trial.add_event(
                "circuit_breaker.state_change", {**NAME, "circuit_breaker.state.from": a, "circuit_breaker.state.to": b}
            )


def test_breakers_page_shows_settings_time_in_state_and_a_visible_open_period(client, tracer_provider_factory):
    open_briefly(tracer_provider_factory)
    doc = json.loads(client.get("/api/v1/breakers?window=15m").get_data())
    [b] = doc["breakers"]
    assert (b["failure_threshold"], b["reset_timeout_ms"], b["state"]) == (3, 1500, "closed")
    assert b["time_in_state_ns"] < 60_000_000_000, "closed since the trial, inside the window"
    soup = BeautifulSoup(client.get("/breakers?window=15m").get_data(as_text=True), "html.parser")
    row = soup.select_one("tr.breaker")
    assert row.select_one(".settings").get_text(" ", strip=True) == (
        "opens after 3 failures in a row; tries again after 1.5s"
    )
    assert "before the window" not in row.select_one("td.in-state").get_text()
    opened = row.select_one(".seg.state-open")
    width = float(opened["style"].split("width:")[1].strip(" %;"))
    assert width >= 1.0, "a 50 ms open period in 15 minutes must still be visible"
    assert "open for" in opened["title"]
