"""The orders service's data: an event-sourced log of order events and its CQRS read model.

The log (``order_events``) is the source of truth: each order is a stream of events with
versions 1, 2, 3 ... A command loads the order (the aggregate) by folding its stream,
decides which events follow, and appends them with the version it loaded as the expected
one; a unique (order, version) index makes a concurrent append fail, and the command is
retried on the new version (:class:`OrderLog.execute`, traced: each conflict is an
``event_sourcing.version_conflict`` event on the command's span). ``orders_view`` is a
projection updated in the same transaction as each append; it can be rebuilt from the log
at any time with ``build_read_model``, a pure function, and :meth:`OrderLog.rebuild`
reports how the stored one differed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import tenacity
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from demo_services.service import create_schema

ORDER_CREATED = "OrderCreated"
ITEM_ADDED = "ItemAdded"
QUANTITY_UPDATED = "QuantityUpdated"
NOTE_ADDED = "NoteAdded"
ORDER_PLACED = "OrderPlaced"
ORDER_CANCELLED = "OrderCancelled"
EVENT_TYPES = (ORDER_CREATED, ITEM_ADDED, QUANTITY_UPDATED, NOTE_ADDED, ORDER_PLACED, ORDER_CANCELLED)
VERSION_CONFLICT = "event_sourcing.version_conflict"
COMMAND_ATTEMPTS = 5
STREAM = "event_sourcing.stream"
EXPECTED_VERSION = "event_sourcing.version.expected"
ACTUAL_VERSION = "event_sourcing.version.actual"
_tracer = trace.get_tracer(__name__)

metadata = sa.MetaData()
order_events = sa.Table(
    "order_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String, nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("recorded_ns", sa.BigInteger, nullable=False),
    sa.Index("ux_order_events_version", "order_id", "version", unique=True),
)
orders_view = sa.Table(
    "orders_view",
    metadata,
    sa.Column("order_id", sa.String, primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class OrderEvent:
    """One entry of the log."""

    seq: int
    order_id: str
    type: str
    data: dict[str, Any]
    version: int = 0


class VersionConflict(Exception):
    """Another command appended to the order's stream since it was loaded."""

    def __init__(self, order_id: str, expected: int, actual: int) -> None:
        super().__init__(f"order {order_id} is at version {actual}, not {expected}")
        self.order_id = order_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class OrderAggregate:
    """One order as its stream tells it: the folded state (None before it was created) and
    the version of the last event."""

    order_id: str
    version: int
    state: dict[str, Any] | None
    events: list[OrderEvent] = field(default_factory=list)

    @property
    def status(self) -> str | None:
        """``pending``, ``placed`` or ``cancelled``; None for an order with no events."""
        return self.state["status"] if self.state else None


NewEvents = list[tuple[str, dict[str, Any]]]
"""What a command decided: (event type, data) pairs to append, in order."""


def apply_event(view: dict[str, Any] | None, event: OrderEvent) -> dict[str, Any]:
    """Return the read-model document after ``event``; ``view`` is not modified.

    Raises ``ValueError`` for an unknown event type or an event before OrderCreated.
    """
    if event.type == ORDER_CREATED:
        return {
            "order_id": event.order_id,
            "user_id": event.data["user_id"],
            "saga_id": event.data.get("saga_id"),
            "status": "pending",
            "items": [],
            "total_cents": 0,
            "payment_id": None,
            "shipment_id": None,
            "cancel_reason": None,
            "notes": [],
            "version": event.version,
        }
    if view is None:
        raise ValueError(f"{event.type} for order {event.order_id} before {ORDER_CREATED}")
    doc = json.loads(json.dumps(view))
    if event.type == ITEM_ADDED:
        doc["items"].append(
            {
                "product_id": event.data["product_id"],
                "quantity": event.data["quantity"],
                "unit_price_cents": event.data["unit_price_cents"],
            }
        )
    elif event.type == QUANTITY_UPDATED:
        for item in doc["items"]:
            if item["product_id"] == event.data["product_id"]:
                item["quantity"] = event.data["quantity"]
    elif event.type == NOTE_ADDED:
        doc.setdefault("notes", []).append(event.data["text"])
    elif event.type == ORDER_PLACED:
        doc["status"] = "placed"
        doc["payment_id"] = event.data.get("payment_id")
        doc["shipment_id"] = event.data.get("shipment_id")
    elif event.type == ORDER_CANCELLED:
        doc["status"] = "cancelled"
        doc["cancel_reason"] = event.data.get("reason")
    else:
        raise ValueError(f"unknown order event type {event.type!r}")
    doc["total_cents"] = sum(i["quantity"] * i["unit_price_cents"] for i in doc["items"])
    doc["version"] = event.version
    return doc


def build_read_model(events: Iterable[OrderEvent]) -> dict[str, dict[str, Any]]:
    """Fold events (in log order) into one read-model document per order."""
    model: dict[str, dict[str, Any]] = {}
    for event in events:
        model[event.order_id] = apply_event(model.get(event.order_id), event)
    return model


class OrderLog:
    """Load orders from their streams, append with an expected version, keep the read model."""

    def __init__(
        self,
        engine: sa.Engine,
        hold: Callable[[str], None] | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._engine = engine
        self._hold = hold
        self._tracer = tracer or _tracer
        create_schema(engine, metadata)
        _add_versions(engine)

    def load(self, order_id: str, conn: sa.Connection | None = None) -> OrderAggregate:
        """Fold the order's stream into its current state and version."""
        if conn is None:
            with self._engine.connect() as own:
                return self.load(order_id, own)
        query = sa.select(order_events).where(order_events.c.order_id == order_id).order_by(order_events.c.version)
        events = [_event(r) for r in conn.execute(query).mappings()]
        state = None
        for event in events:
            state = apply_event(state, event)
        return OrderAggregate(order_id, events[-1].version if events else 0, state, events)

    def append(self, conn: sa.Connection, order_id: str, expected_version: int, new: NewEvents) -> list[OrderEvent]:
        """Append ``new`` after version ``expected_version`` inside the caller's transaction
        and update the read model; raise :class:`VersionConflict` when the stream moved on."""
        current = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(order_events.c.version), 0)).where(
                order_events.c.order_id == order_id
            )
        ).scalar_one()
        if current != expected_version:
            raise VersionConflict(order_id, expected_version, int(current))
        row = conn.execute(sa.select(orders_view.c.document).where(orders_view.c.order_id == order_id)).first()
        # The projection moves on from its stored document (from the stream, if it has none).
        doc = json.loads(row[0]) if row else self.load(order_id, conn).state
        appended = []
        for offset, (event_type, data) in enumerate(new, start=1):
            if event_type not in EVENT_TYPES:
                raise ValueError(f"unknown order event type {event_type!r}")
            version = expected_version + offset
            try:
                seq = conn.execute(
                    order_events.insert().values(
                        order_id=order_id,
                        version=version,
                        type=event_type,
                        data=json.dumps(data),
                        recorded_ns=time.time_ns(),
                    )
                ).inserted_primary_key[0]
            except sa.exc.IntegrityError as err:  # a concurrent append took this version
                raise VersionConflict(order_id, expected_version, version) from err
            event = OrderEvent(int(seq), order_id, event_type, data, version)
            doc = apply_event(doc, event)
            appended.append(event)
        if appended:
            assert doc is not None
            if row is None:
                conn.execute(orders_view.insert().values(order_id=order_id, document=json.dumps(doc)))
            else:
                conn.execute(
                    orders_view.update().where(orders_view.c.order_id == order_id).values(document=json.dumps(doc))
                )
        return appended

    def execute(
        self,
        command: str,
        order_id: str,
        decide: Callable[[OrderAggregate], NewEvents],
        then: Callable[[sa.Connection, list[OrderEvent]], None] | None = None,
    ) -> list[OrderEvent]:
        """Run one command on an order: load it, ``decide`` the new events, append them at
        the loaded version, and ``then`` (e.g. publish to the outbox) in the same transaction.

        A version conflict is an ``event_sourcing.version_conflict`` event on the command's
        span and the command is run again on the new version (up to 5 attempts). ``decide`` may raise
        to refuse the command; it returns ``[]`` when there is nothing to do (an idempotent
        repeat).
        """
        with self._tracer.start_as_current_span(f"order command {command}", attributes={STREAM: order_id}) as span:
            retrying = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(COMMAND_ATTEMPTS),
                wait=tenacity.wait_exponential(multiplier=0.01, max=0.2),
                retry=tenacity.retry_if_exception_type(VersionConflict),
                before_sleep=_record_conflict,
                reraise=True,
            )
            try:
                for attempt in retrying:
                    with attempt:
                        aggregate = self.load(order_id)
                        new = decide(aggregate)
                        if new and self._hold is not None:
                            for event_type, _data in new:
                                self._hold(f"append {event_type}")
                        with self._engine.begin() as conn:
                            events = self.append(conn, order_id, aggregate.version, new)
                            if then is not None and events:
                                then(conn, events)
                        span.set_attribute(EXPECTED_VERSION, aggregate.version)
                        return events
            except VersionConflict as err:
                span.set_status(Status(StatusCode.ERROR, str(err)))
                raise
        raise AssertionError("unreachable: tenacity returns or raises")

    def events(self, order_id: str | None = None) -> list[OrderEvent]:
        """Return the log in append order, for one order or all."""
        query = sa.select(order_events).order_by(order_events.c.seq)
        if order_id is not None:
            query = query.where(order_events.c.order_id == order_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_event(r) for r in rows]

    def get(self, order_id: str) -> dict[str, Any] | None:
        """Return the read-model document of one order, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(orders_view.c.document).where(orders_view.c.order_id == order_id)).first()
        return json.loads(row[0]) if row else None

    def all(self) -> dict[str, dict[str, Any]]:
        """Return the whole stored read model, by order id."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(orders_view)).all()
        return {order_id: json.loads(doc) for order_id, doc in rows}

    def rebuild(self) -> dict[str, Any]:
        """Rebuild the read model from the log, compare it with the stored one, store it.

        Traced as ``rebuild read model``. Returns the counts, whether the stored model was
        equal, and each order that differed (stored and rebuilt documents; at most 20).
        """
        with self._tracer.start_as_current_span("rebuild read model") as span, self._engine.begin() as conn:
            rows = conn.execute(sa.select(order_events).order_by(order_events.c.seq)).mappings().all()
            model = build_read_model(_event(r) for r in rows)
            stored = {k: json.loads(v) for k, v in conn.execute(sa.select(orders_view)).all()}
            differences = [
                {"order_id": order_id, "stored": stored.get(order_id), "rebuilt": model.get(order_id)}
                for order_id in sorted(set(stored) | set(model))
                if stored.get(order_id) != model.get(order_id)
            ]
            conn.execute(orders_view.delete())
            if model:
                conn.execute(
                    orders_view.insert(),
                    [{"order_id": k, "document": json.dumps(v)} for k, v in model.items()],
                )
            span.set_attribute("read_model.events", len(rows))
            span.set_attribute("read_model.orders", len(model))
            span.set_attribute("read_model.differences", len(differences))
        return {
            "orders": len(model),
            "events": len(rows),
            "equal": not differences,
            "differences": differences[:20],
        }


def _event(row: Any) -> OrderEvent:
    return OrderEvent(row["seq"], row["order_id"], row["type"], json.loads(row["data"]), row["version"] or 0)


def _record_conflict(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    if isinstance(error, VersionConflict):
        trace.get_current_span().add_event(
            VERSION_CONFLICT,
            {
                EXPECTED_VERSION: error.expected,
                ACTUAL_VERSION: error.actual,
                "retry.attempt": state.attempt_number,
            },
        )


def _add_versions(engine: sa.Engine) -> None:
    """Number the events of a log written before streams had versions (1, 2 ... per order)."""
    with engine.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("order_events")}
        if "version" not in columns:
            conn.exec_driver_sql("ALTER TABLE order_events ADD COLUMN version INTEGER")
        conn.exec_driver_sql(
            "UPDATE order_events SET version = (SELECT COUNT(*) FROM order_events AS e "
            "WHERE e.order_id = order_events.order_id AND e.seq <= order_events.seq) WHERE version IS NULL"
        )
        conn.exec_driver_sql(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_order_events_version ON order_events (order_id, version)"
        )
