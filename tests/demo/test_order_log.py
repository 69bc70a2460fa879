"""Unit tests of the event-sourced order log on a real SQLite file: streams with versions,
a concurrent append's conflict and retry, and rebuilding the read model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from demo_services.order_log import (
    NOTE_ADDED,
    ORDER_CREATED,
    ORDER_PLACED,
    OrderAggregate,
    OrderLog,
    VersionConflict,
    orders_view,
)
from demo_services.service import create_engine
from tests.demo.helpers import Spans


@pytest.fixture
def engine(tmp_path: Path):
    engine = create_engine(tmp_path / "orders.db")
    yield engine
    engine.dispose()


def create(log: OrderLog, order_id: str = "o1") -> None:
    log.execute("CreateOrder", order_id, lambda order: [(ORDER_CREATED, {"user_id": 1, "saga_id": "s"})])


def note(text: str):
    return lambda order: [(NOTE_ADDED, {"text": text})]


def test_commands_load_the_aggregate_and_append_at_the_next_version(engine: sa.Engine, spans: Spans) -> None:
    log = OrderLog(engine, tracer=spans.tracer)
    create(log)
    log.execute("AddNote", "o1", note("ring twice"))

    order = log.load("o1")

    assert isinstance(order, OrderAggregate)
    assert (order.version, order.status, order.state["notes"]) == (2, "pending", ["ring twice"])
    assert [e.version for e in log.events("o1")] == [1, 2]
    assert log.get("o1") == order.state
    with engine.begin() as conn, pytest.raises(VersionConflict):
        log.append(conn, "o1", 1, [(NOTE_ADDED, {"text": "late"})])


def test_a_concurrent_append_gets_a_conflict_and_the_command_is_retried(engine: sa.Engine, spans: Spans) -> None:
    held, release = threading.Event(), threading.Event()

    def hold(point: str) -> None:
        if point == f"append {ORDER_PLACED}" and not release.is_set():
            held.set()
            release.wait(10)

    log = OrderLog(engine, hold=hold, tracer=spans.tracer)
    create(log)
    placed: list = []
    placing = threading.Thread(
        target=lambda: placed.extend(
            log.execute("PlaceOrder", "o1", lambda o: [] if o.status == "placed" else [(ORDER_PLACED, {})])
        )
    )
    placing.start()
    assert held.wait(10)
    log.execute("AddNote", "o1", note("leave at the door"))  # lands while PlaceOrder holds version 1
    release.set()
    placing.join(10)

    assert [e.version for e in placed] == [3]
    assert log.get("o1")["status"] == "placed" and log.get("o1")["notes"] == ["leave at the door"]
    command = next(s for s in spans.finished() if s.name == "order command PlaceOrder")
    conflicts = [e.attributes for e in command.events if e.name == "event_sourcing.version_conflict"]
    versions = [(c["event_sourcing.version.expected"], c["event_sourcing.version.actual"]) for c in conflicts]
    assert versions == [(1, 2)]
    assert command.attributes["event_sourcing.version.expected"] == 2


def test_rebuilding_reports_equal_and_then_the_differences_it_repaired(engine: sa.Engine, spans: Spans) -> None:
    log = OrderLog(engine, tracer=spans.tracer)
    create(log, "o1")
    create(log, "o2")
    log.execute("AddNote", "o2", note("gift"))

    assert log.rebuild() == {"orders": 2, "events": 3, "equal": True, "differences": []}
    with engine.begin() as conn:
        conn.execute(orders_view.update().where(orders_view.c.order_id == "o2").values(document=json.dumps({})))
    report = log.rebuild()

    assert report["equal"] is False
    differences = [(d["order_id"], d["stored"], d["rebuilt"]["notes"]) for d in report["differences"]]
    assert differences == [("o2", {}, ["gift"])]
    assert log.rebuild()["equal"] is True
    span = next(s for s in spans.finished() if s.name == "rebuild read model")
    assert span.attributes["read_model.orders"] == 2


def test_a_log_written_before_versions_gets_them_numbered(engine: sa.Engine, spans: Spans) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE order_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, order_id VARCHAR NOT NULL, "
            "type VARCHAR NOT NULL, data TEXT NOT NULL, recorded_ns BIGINT NOT NULL)"
        )
        for order_id, kind in (("a", ORDER_CREATED), ("b", ORDER_CREATED), ("a", NOTE_ADDED)):
            data = {"user_id": 1} if kind == ORDER_CREATED else {"text": "x"}
            conn.execute(
                sa.text("INSERT INTO order_events (order_id, type, data, recorded_ns) VALUES (:o, :t, :d, 0)"),
                {"o": order_id, "t": kind, "d": json.dumps(data)},
            )

    log = OrderLog(engine, tracer=spans.tracer)

    assert [(e.order_id, e.version) for e in log.events()] == [("a", 1), ("b", 1), ("a", 2)]
    log.execute("AddNote", "a", note("y"))
    assert log.load("a").version == 3
