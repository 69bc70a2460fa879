"""Asynchronous messaging: a transactional outbox, its relay, and an idempotent inbox.

Written by hand because the demo needs no broker: the producer writes each message into
an ``outbox`` table in the same transaction as the state change that caused it, a relay
thread delivers pending messages (at least once, retrying until delivery succeeds), and
the consumer's ``inbox`` table drops duplicates by message id and processes each message
once, in the same transaction as its effect.

Tracing follows the OpenTelemetry messaging conventions: a PRODUCER span when a message
is published (its context travels in the message headers) and a CONSUMER span when it is
processed, which starts a new trace and links to the producer span. An outbox given a
``conversation_key`` copies that payload field (e.g. the order id) into the message's
headers and, as ``messaging.message.conversation_id``, onto the producer span and every
consumer span of the message, so one tag search finds every trace of a conversation (a
chain of events caused by one order).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Tracer
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from demo_services.telemetry import extract_context, inject_headers

MESSAGING_SYSTEM = "messaging.system"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_DESTINATION = "messaging.destination.name"
MESSAGING_MESSAGE_ID = "messaging.message.id"
MESSAGING_CONVERSATION_ID = "messaging.message.conversation_id"
CONVERSATION_HEADER = "conversation-id"
SYSTEM_NAME = "spyglass-outbox"


@dataclass(frozen=True)
class Message:
    """One event: id, topic (e.g. ``OrderPlaced``), JSON payload and headers (the trace
    context, and the conversation id when the outbox has one)."""

    message_id: str
    topic: str
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the wire form used between relay and consumer."""
        return {
            "message_id": self.message_id,
            "topic": self.topic,
            "payload": self.payload,
            "headers": self.headers,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """Parse the wire form; raise ``KeyError``/``TypeError`` when fields are missing."""
        return cls(
            message_id=str(data["message_id"]),
            topic=str(data["topic"]),
            payload=dict(data["payload"]),
            headers={str(k): str(v) for k, v in dict(data.get("headers") or {}).items()},
        )


class Outbox:
    """The producer's outbox table; ``publish`` must run inside the caller's transaction."""

    def __init__(self, metadata: sa.MetaData, tracer: Tracer, *, conversation_key: str | None = None) -> None:
        self._tracer = tracer
        self._conversation_key = conversation_key
        self.table = sa.Table(
            "outbox",
            metadata,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("message_id", sa.String, nullable=False, unique=True),
            sa.Column("topic", sa.String, nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("headers", sa.Text, nullable=False),
            sa.Column("created_ns", sa.BigInteger, nullable=False),
            sa.Column("delivered_ns", sa.BigInteger, nullable=True),
            sa.Column("attempts", sa.Integer, nullable=False, default=0),
        )

    def publish(self, conn: sa.Connection, topic: str, payload: dict[str, Any]) -> Message:
        """Record ``payload`` for delivery, under a PRODUCER span whose context it carries."""
        message_id = uuid.uuid4().hex
        attributes = {
            MESSAGING_SYSTEM: SYSTEM_NAME,
            MESSAGING_OPERATION_TYPE: "publish",
            MESSAGING_DESTINATION: topic,
            MESSAGING_MESSAGE_ID: message_id,
        }
        conversation = payload.get(self._conversation_key) if self._conversation_key else None
        if conversation is not None:
            attributes[MESSAGING_CONVERSATION_ID] = str(conversation)
        with self._tracer.start_as_current_span(f"publish {topic}", kind=SpanKind.PRODUCER, attributes=attributes):
            headers: dict[str, str] = {}
            inject_headers(headers)
            if conversation is not None:
                headers[CONVERSATION_HEADER] = str(conversation)
            conn.execute(
                self.table.insert().values(
                    message_id=message_id,
                    topic=topic,
                    payload=json.dumps(payload),
                    headers=json.dumps(headers),
                    created_ns=time.time_ns(),
                    attempts=0,
                )
            )
        return Message(message_id, topic, payload, headers)

    def pending(self, engine: sa.Engine, limit: int = 100) -> list[Message]:
        """Return undelivered messages, oldest first, at most ``limit``."""
        query = sa.select(self.table).where(self.table.c.delivered_ns.is_(None)).order_by(self.table.c.seq).limit(limit)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [Message(r["message_id"], r["topic"], json.loads(r["payload"]), json.loads(r["headers"])) for r in rows]

    def mark_delivered(self, engine: sa.Engine, message_id: str) -> None:
        """Record that ``message_id`` was acknowledged by the consumer."""
        with engine.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.message_id == message_id)
                .values(delivered_ns=time.time_ns(), attempts=self.table.c.attempts + 1)
            )

    def mark_attempt(self, engine: sa.Engine, message_id: str) -> None:
        """Count a failed delivery attempt of ``message_id``."""
        with engine.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.message_id == message_id)
                .values(attempts=self.table.c.attempts + 1)
            )


class OutboxRelay:
    """Deliver pending outbox messages with ``deliver``; at-least-once, in order.

    ``deliver(message)`` returns when the consumer acknowledged, or raises one of
    ``delivery_errors``; a failed message stays pending and the round stops, so it is
    retried (and later messages wait) on the next round. A message acknowledged but not
    yet marked delivered (crash in between) is delivered again: consumers dedupe.
    """

    def __init__(
        self,
        outbox: Outbox,
        engine: sa.Engine,
        deliver: Callable[[Message], None],
        *,
        delivery_errors: tuple[type[BaseException], ...] = (ConnectionError,),
        interval_s: float = 0.5,
    ) -> None:
        self._outbox = outbox
        self._engine = engine
        self._deliver = deliver
        self._errors = delivery_errors
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def relay_once(self) -> int:
        """Deliver what is pending now; return how many messages were delivered."""
        delivered = 0
        for message in self._outbox.pending(self._engine):
            try:
                self._deliver(message)
            except self._errors:
                self._outbox.mark_attempt(self._engine, message.message_id)
                break
            self._outbox.mark_delivered(self._engine, message.message_id)
            delivered += 1
        return delivered

    def start(self) -> None:
        """Relay in a daemon thread every ``interval_s`` until ``stop()``."""
        self._thread = threading.Thread(target=self._loop, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the relay thread."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.relay_once()


class Inbox:
    """The consumer's inbox table: receive once per message id, process once."""

    def __init__(self, metadata: sa.MetaData, tracer: Tracer) -> None:
        self._tracer = tracer
        self.table = sa.Table(
            "inbox",
            metadata,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("message_id", sa.String, nullable=False, unique=True),
            sa.Column("topic", sa.String, nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("headers", sa.Text, nullable=False),
            sa.Column("received_ns", sa.BigInteger, nullable=False),
            sa.Column("processed_ns", sa.BigInteger, nullable=True),
        )

    def receive(self, engine: sa.Engine, message: Message) -> bool:
        """Store ``message`` for processing; return False if it was already received."""
        statement = (
            sqlite_insert(self.table)
            .values(
                message_id=message.message_id,
                topic=message.topic,
                payload=json.dumps(message.payload),
                headers=json.dumps(message.headers),
                received_ns=time.time_ns(),
            )
            .on_conflict_do_nothing(index_elements=["message_id"])
        )
        with engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def process_pending(self, engine: sa.Engine, handler: Callable[[sa.Connection, Message], None]) -> int:
        """Process received messages in order, each in one transaction with its effect.

        Each message gets a CONSUMER span that starts a new trace and links to the
        producer span found in its headers. Returns the number processed.
        """
        query = sa.select(self.table).where(self.table.c.processed_ns.is_(None)).order_by(self.table.c.seq)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        for row in rows:
            message = Message(
                row["message_id"],
                row["topic"],
                json.loads(row["payload"]),
                json.loads(row["headers"]),
            )
            self._process(engine, message, handler)
        return len(rows)

    def _process(
        self,
        engine: sa.Engine,
        message: Message,
        handler: Callable[[sa.Connection, Message], None],
    ) -> None:
        producer = trace.get_current_span(extract_context(message.headers)).get_span_context()
        links = [Link(producer)] if producer.is_valid else []
        attributes = {
            MESSAGING_SYSTEM: SYSTEM_NAME,
            MESSAGING_OPERATION_TYPE: "process",
            MESSAGING_DESTINATION: message.topic,
            MESSAGING_MESSAGE_ID: message.message_id,
        }
        if message.headers.get(CONVERSATION_HEADER):
            attributes[MESSAGING_CONVERSATION_ID] = message.headers[CONVERSATION_HEADER]
        with (
            self._tracer.start_as_current_span(
                f"process {message.topic}",
                context=Context(),
                kind=SpanKind.CONSUMER,
                links=links,
                attributes=attributes,
            ),
            engine.begin() as conn,
        ):
            handler(conn, message)
            conn.execute(
                self.table.update()
                .where(self.table.c.message_id == message.message_id)
                .values(processed_ns=time.time_ns())
            )
