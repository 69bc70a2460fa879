"""Notifications service: consumes order events asynchronously and idempotently.

The orders service's outbox relay POSTs each event to ``/events``; the event is stored
in the inbox (a duplicate is acknowledged and ignored) and processed later by a worker,
under a CONSUMER span linked to the producer's span.
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
from flask import Response, jsonify, request
from opentelemetry import trace

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
    error_response,
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
# The orchestrated order saga has steps 0-4; notifying the customer follows them.
NOTIFY_STEP = "notify_customer"
NOTIFY_STEP_INDEX = 5
_TEXTS = {
    "OrderPlaced": "Your order {order_id} is on its way.",
    "OrderCancelled": "Your order {order_id} was cancelled: {reason}.",
}


def create_service(settings: ServiceSettings) -> Service:
    """Build the notifications service."""
    service = make_service("notifications", settings)
    app, engine = service.app, service.engine
    assert engine is not None
    inbox = Inbox(metadata, trace.get_tracer(__name__))
    create_schema(engine, metadata)

    @app.post("/events")
    def receive() -> tuple[Response, int]:
        try:
            message = Message.from_json(request.get_json(silent=True) or {})
        except (KeyError, TypeError, ValueError) as err:
            return error_response(400, f"not an event message: {err}"), 400
        new = inbox.receive(engine, message)
        return jsonify(message_id=message.message_id, duplicate=not new), 202

    @app.get("/notifications")
    def list_notifications() -> Response:
        query = sa.select(notifications).order_by(notifications.c.id)
        if "order_id" in request.args:
            query = query.where(notifications.c.order_id == request.args["order_id"])
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return jsonify(notifications=[dict(r) for r in rows])

    def work_forever() -> None:
        while True:
            time.sleep(settings.relay_interval_s)
            inbox.process_pending(engine, notify)

    service.background.append(lambda: threading.Thread(target=work_forever, name="inbox-worker", daemon=True).start())
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
    text = template.format(order_id=payload.get("order_id"), reason=payload.get("reason", ""))
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
