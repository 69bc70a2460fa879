"""Unit tests for the outbox, its relay and the idempotent inbox."""

from __future__ import annotations

import tempfile
from pathlib import Path

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.trace import SpanKind

from demo_services.patterns.events import Inbox, Message, Outbox, OutboxRelay
from demo_services.service import create_engine
from tests.demo.helpers import Spans


class _Consumer:
    """An inbox on its own database that records what it processed."""

    def __init__(self, tracer, directory: Path) -> None:
        self.metadata = sa.MetaData()
        self.inbox = Inbox(self.metadata, tracer)
        self.engine = create_engine(directory / "consumer.db")
        self.metadata.create_all(self.engine)
        self.processed: list[str] = []

    def handle(self, conn: sa.Connection, message: Message) -> None:
        self.processed.append(message.payload["n"])


def _producer(tracer, directory: Path) -> tuple[Outbox, sa.Engine]:
    metadata = sa.MetaData()
    outbox = Outbox(metadata, tracer)
    engine = create_engine(directory / "producer.db")
    metadata.create_all(engine)
    return outbox, engine


@settings(max_examples=30, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=8),
    outcomes=st.lists(st.sampled_from(["ok", "fail", "ack-lost"]), max_size=40),
)
def test_relay_delivers_every_message_and_inbox_processes_each_once(count: int, outcomes: list[str]) -> None:
    # Hypothesis runs this once per example: each gets a directory that is removed after it.
    with tempfile.TemporaryDirectory(prefix="spyglass-events-") as directory:
        recorder = Spans()
        outbox, engine = _producer(recorder.tracer, Path(directory))
        consumer = _Consumer(recorder.tracer, Path(directory))
        try:
            _relay_and_check(outbox, engine, consumer, count, outcomes)
        finally:
            engine.dispose()
            consumer.engine.dispose()
            recorder.provider.shutdown()


def _relay_and_check(outbox: Outbox, engine: sa.Engine, consumer: _Consumer, count: int, outcomes: list[str]) -> None:
    for n in range(count):
        with engine.begin() as conn:
            outbox.publish(conn, "Counted", {"n": n})
    script = iter(outcomes)

    def deliver(message: Message) -> None:
        outcome = next(script, "ok")
        if outcome == "fail":
            raise ConnectionError("consumer down")
        consumer.inbox.receive(consumer.engine, message)
        if outcome == "ack-lost":
            # Delivered, but the acknowledgement is lost: the relay must send it again.
            raise ConnectionError("acknowledgement lost")

    relay = OutboxRelay(outbox, engine, deliver)
    for _ in range(len(outcomes) + count + 1):
        relay.relay_once()
    consumer.inbox.process_pending(consumer.engine, consumer.handle)
    consumer.inbox.process_pending(consumer.engine, consumer.handle)

    assert outbox.pending(engine) == []
    assert consumer.processed == list(range(count))


def test_publish_rolls_back_with_its_transaction(spans: Spans, tmp_path: Path) -> None:
    outbox, engine = _producer(spans.tracer, tmp_path)

    class Abort(Exception):
        pass

    try:
        with engine.begin() as conn:
            outbox.publish(conn, "OrderPlaced", {"n": 1})
            raise Abort
    except Abort:
        pass

    assert outbox.pending(engine) == []


def test_consumer_span_starts_new_trace_linked_to_producer(spans: Spans, tmp_path: Path) -> None:
    outbox, engine = _producer(spans.tracer, tmp_path)
    consumer = _Consumer(spans.tracer, tmp_path)
    with spans.tracer.start_as_current_span("request"), engine.begin() as conn:
        message = outbox.publish(conn, "OrderPlaced", {"n": 7})

    assert consumer.inbox.receive(consumer.engine, message) is True
    assert consumer.inbox.receive(consumer.engine, message) is False
    assert consumer.inbox.process_pending(consumer.engine, consumer.handle) == 1

    by_kind = {s.kind: s for s in spans.finished()}
    producer, consumed = by_kind[SpanKind.PRODUCER], by_kind[SpanKind.CONSUMER]
    assert producer.attributes["messaging.operation.type"] == "publish"
    assert consumed.attributes["messaging.operation.type"] == "process"
    assert consumed.attributes["messaging.message.id"] == message.message_id
    assert consumed.context.trace_id != producer.context.trace_id
    assert [link.context.span_id for link in consumed.links] == [producer.context.span_id]
    assert consumer.processed == [7]


def test_a_conversation_id_travels_from_the_producer_span_to_the_consumer_span(spans: Spans, tmp_path: Path) -> None:
    metadata = sa.MetaData()
    outbox = Outbox(metadata, spans.tracer, conversation_key="order_id")
    engine = create_engine(tmp_path / "producer.db")
    metadata.create_all(engine)
    consumer = _Consumer(spans.tracer, tmp_path)
    with engine.begin() as conn:
        message = outbox.publish(conn, "OrderPlaced", {"order_id": "o-1", "n": 1})
        untagged = Outbox(sa.MetaData(), spans.tracer).publish(conn, "OrderPlaced", {"order_id": "o-2", "n": 2})
    for sent in (message, untagged):
        consumer.inbox.receive(consumer.engine, sent)
    consumer.inbox.process_pending(consumer.engine, consumer.handle)

    by_message = {(s.kind, s.attributes["messaging.message.id"]): s for s in spans.finished()}
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
        assert by_message[(kind, message.message_id)].attributes["messaging.message.conversation_id"] == "o-1"
        assert "messaging.message.conversation_id" not in by_message[(kind, untagged.message_id)].attributes
