"""The orders service's data: an event-sourced log of order events and its CQRS read model.

The log (``order_events``) is the source of truth; ``orders_view`` is a projection that
is updated in the same transaction as each append and can be rebuilt from the log at any
time with ``build_read_model``, a pure function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from demo_services.service import create_schema

ORDER_CREATED = "OrderCreated"
ITEM_ADDED = "ItemAdded"
QUANTITY_UPDATED = "QuantityUpdated"
ORDER_PLACED = "OrderPlaced"
ORDER_CANCELLED = "OrderCancelled"
EVENT_TYPES = (ORDER_CREATED, ITEM_ADDED, QUANTITY_UPDATED, ORDER_PLACED, ORDER_CANCELLED)

metadata = sa.MetaData()
order_events = sa.Table(
    "order_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String, nullable=False, index=True),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("recorded_ns", sa.BigInteger, nullable=False),
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
            "version": event.seq,
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
    doc["version"] = event.seq
    return doc


def build_read_model(events: Iterable[OrderEvent]) -> dict[str, dict[str, Any]]:
    """Fold events (in log order) into one read-model document per order."""
    model: dict[str, dict[str, Any]] = {}
    for event in events:
        model[event.order_id] = apply_event(model.get(event.order_id), event)
    return model


class OrderLog:
    """Append order events and keep the read model in step, in one transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        create_schema(engine, metadata)

    def append(self, conn: sa.Connection, order_id: str, event_type: str, data: dict[str, Any]) -> OrderEvent:
        """Append one event inside the caller's transaction and update the read model."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown order event type {event_type!r}")
        seq = conn.execute(
            order_events.insert().values(
                order_id=order_id,
                type=event_type,
                data=json.dumps(data),
                recorded_ns=time.time_ns(),
            )
        ).inserted_primary_key[0]
        event = OrderEvent(int(seq), order_id, event_type, data)
        row = conn.execute(sa.select(orders_view.c.document).where(orders_view.c.order_id == order_id)).first()
        doc = apply_event(json.loads(row[0]) if row else None, event)
        if row is None:
            conn.execute(orders_view.insert().values(order_id=order_id, document=json.dumps(doc)))
        else:
            conn.execute(
                orders_view.update().where(orders_view.c.order_id == order_id).values(document=json.dumps(doc))
            )
        return event

    def events(self, order_id: str | None = None) -> list[OrderEvent]:
        """Return the log in append order, for one order or all."""
        query = sa.select(order_events).order_by(order_events.c.seq)
        if order_id is not None:
            query = query.where(order_events.c.order_id == order_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [OrderEvent(r["seq"], r["order_id"], r["type"], json.loads(r["data"])) for r in rows]

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

    def rebuild(self) -> int:
        """Replace the read model with one rebuilt from the log; return the order count."""
        with self._engine.begin() as conn:
            rows = conn.execute(sa.select(order_events).order_by(order_events.c.seq)).mappings()
            model = build_read_model(
                OrderEvent(r["seq"], r["order_id"], r["type"], json.loads(r["data"])) for r in rows
            )
            conn.execute(orders_view.delete())
            if model:
                conn.execute(
                    orders_view.insert(),
                    [{"order_id": k, "document": json.dumps(v)} for k, v in model.items()],
                )
        return len(model)
