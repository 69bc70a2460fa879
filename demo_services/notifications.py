"""Notifications service: consumes order and shipment events asynchronously and idempotently.

The relays of orders and shipping POST each event to ``/events``; the event is stored in
the inbox (a duplicate is acknowledged and ignored) and processed later by a worker,
under a CONSUMER span linked to the producer's span. ``OrderPlaced`` and
``OrderCancelled`` come from orders; ``ShipmentPrepared`` comes from shipping, which
published it in reaction to ``OrderPlaced`` (the choreographed chain, see messaging.py).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from flask import Response, jsonify, request
from opentelemetry import trace

from demo_services.messaging import CONSUMER_UNTRACED_URLS, SHIPMENT_PREPARED, consume_events
from demo_services.patterns.events import Inbox, Message
from demo_services.patterns.saga import (
    PHASE_ACTION,
    SAGA_ID,
    SAGA_NAME,
    SAGA_PHASE,
    SAGA_STEP,
    SAGA_STEP_INDEX,
)
from demo_services.service import (
    Service,
    ServiceSettings,
    create_schema,
    main_for,
    make_service,
)

metadata = sa.MetaData()
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String, nullable=False, unique=True),
    sa.Column("order_id", sa.String, nullable=False, index=True),
    sa.Column("text", sa.String, nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
)
# The orchestrated order saga has steps 0-7; notifying the customer follows them.
NOTIFY_STEP = "notify_customer"
NOTIFY_STEP_INDEX = 8
_TEXTS = {
    "OrderPlaced": "Your order {order_id} is on its way.",
    "OrderCancelled": "Your order {order_id} was cancelled: {reason}.",
    SHIPMENT_PREPARED: "Your order {order_id} is packed; tracking number {tracking_number}.",
}


def create_service(settings: ServiceSettings) -> Service:
    """Build the notifications service."""
    service = make_service("notifications", settings, untraced_urls=CONSUMER_UNTRACED_URLS)
    app, engine = service.app, service.engine
    assert engine is not None
    inbox = Inbox(metadata, trace.get_tracer(__name__))
    create_schema(engine, metadata)

    consume_events(service, inbox, notify, settings.relay_interval_s)

    @app.get("/notifications")
    def list_notifications() -> Response:
        query = sa.select(notifications).order_by(notifications.c.id)
        if "order_id" in request.args:
            query = query.where(notifications.c.order_id == request.args["order_id"])
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return jsonify(notifications=[dict(r) for r in rows])

    return service


def notify(conn: sa.Connection, message: Message) -> None:
    """Write the customer notification for one order event.

    Notifying the customer of a placed order is the order saga's choreographed last step:
    the CONSUMER span carries the saga attributes (and links to the producer span).
    """
    payload = message.payload
    if message.topic == "OrderPlaced" and payload.get("saga_id"):
        trace.get_current_span().set_attributes(
            {
                SAGA_NAME: "order",
                SAGA_ID: str(payload["saga_id"]),
                SAGA_STEP: NOTIFY_STEP,
                SAGA_STEP_INDEX: NOTIFY_STEP_INDEX,
                SAGA_PHASE: PHASE_ACTION,
            }
        )
    template = _TEXTS.get(message.topic, "Update on order {order_id}.")
    text = template.format(
        order_id=payload.get("order_id"),
        reason=payload.get("reason", ""),
        tracking_number=payload.get("tracking_number", ""),
    )
    conn.execute(
        notifications.insert().values(
            message_id=message.message_id,
            order_id=str(payload.get("order_id")),
            text=text,
            created_ns=time.time_ns(),
        )
    )


def main() -> None:
    """Run the notifications process."""
    main_for("notifications", create_service)


if __name__ == "__main__":
    main()
