"""Shipping service: schedule, confirm and cancel shipments (the order saga's calls), and
prepare the parcel of each placed order (a reaction to its ``OrderPlaced`` event).

Preparing a parcel is choreographed, not a saga step: orders publishes ``OrderPlaced``
and waits for nothing; shipping's inbox receives it, and in one transaction records the
parcel with its tracking number, marks the message processed and writes
``ShipmentPrepared`` to its own outbox, which its relay delivers to notifications. A
message delivered twice is processed once, so a parcel is never prepared twice.
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from flask import Response, jsonify, request
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from demo_services.client import ServiceClient, UpstreamError
from demo_services.messaging import CONSUMER_UNTRACED_URLS, SHIPMENT_PREPARED, consume_events, deliver_to_subscribers
from demo_services.order_log import ORDER_PLACED
from demo_services.patterns.events import Inbox, Message, Outbox, OutboxRelay
from demo_services.service import (
    Service,
    ServiceSettings,
    create_schema,
    error_response,
    main_for,
    make_service,
)

metadata = sa.MetaData()
shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("order_id", sa.String, nullable=False, index=True),
    sa.Column("status", sa.String, nullable=False),
)
parcels = sa.Table(
    "parcels",
    metadata,
    sa.Column("order_id", sa.String, primary_key=True),
    sa.Column("shipment_id", sa.String, nullable=False),
    sa.Column("tracking_number", sa.String, nullable=False),
    sa.Column("prepared_ns", sa.BigInteger, nullable=False),
)
DEPENDS_ON = ["notifications"]
CONVERSATION_KEY = "order_id"
ALREADY_PREPARED = "shipping.parcel.already_prepared"
_tracer = trace.get_tracer(__name__)


def create_service(settings: ServiceSettings) -> Service:
    """Build the shipping service."""
    service = make_service("shipping", settings, depends_on=DEPENDS_ON, untraced_urls=CONSUMER_UNTRACED_URLS)
    app, engine = service.app, service.engine
    assert engine is not None and service.discovery is not None
    inbox = Inbox(metadata, _tracer)
    outbox = Outbox(metadata, _tracer, conversation_key=CONVERSATION_KEY)
    create_schema(engine, metadata)
    client = ServiceClient(
        "shipping",
        service.discovery,
        timeout_s=settings.call_timeout_s,
        failure_threshold=settings.breaker_failures,
        reset_after_s=settings.breaker_reset_s,
        bypass=lambda: service.chaos.bypass_breakers,
    )
    relay = OutboxRelay(
        outbox,
        engine,
        deliver_to_subscribers(client),
        delivery_errors=(UpstreamError,),
        interval_s=settings.relay_interval_s,
    )
    service.background.append(relay.start)

    def react(conn: sa.Connection, message: Message) -> None:
        if message.topic == ORDER_PLACED:
            prepare_parcel(conn, message, outbox)

    consume_events(service, inbox, react, settings.relay_interval_s)

    @app.get("/parcels")
    def list_parcels() -> Response:
        query = sa.select(parcels).order_by(parcels.c.prepared_ns)
        if "order_id" in request.args:
            query = query.where(parcels.c.order_id == request.args["order_id"])
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return jsonify(parcels=[dict(r) for r in rows])

    @app.post("/shipments")
    def schedule() -> tuple[Response, int] | Response:
        body = request.get_json(silent=True) or {}
        order_id = body.get("order_id")
        if not isinstance(order_id, str):
            return error_response(400, "order_id is required")
        shipment_id = uuid.uuid4().hex[:16]
        with engine.begin() as conn:
            conn.execute(shipments.insert().values(id=shipment_id, order_id=order_id, status="scheduled"))
        return jsonify(id=shipment_id, order_id=order_id, status="scheduled"), 201

    @app.post("/shipments/<shipment_id>/confirm")
    def confirm(shipment_id: str) -> Response:
        return _set_status(engine, shipment_id, "confirmed")

    @app.delete("/shipments/<shipment_id>")
    def cancel(shipment_id: str) -> Response:
        return _set_status(engine, shipment_id, "cancelled")

    return service


def prepare_parcel(conn: sa.Connection, message: Message, outbox: Outbox) -> None:
    """Prepare the parcel of the order an ``OrderPlaced`` event names and publish
    ``ShipmentPrepared``, in the consumer's transaction. An order whose parcel is prepared
    already is left as it is; one with no shipment here (nothing to pack) marks the
    consumer span as failed. Neither publishes anything."""
    order_id = str(message.payload.get("order_id", ""))
    if conn.execute(sa.select(parcels.c.order_id).where(parcels.c.order_id == order_id)).first() is not None:
        trace.get_current_span().add_event(ALREADY_PREPARED)
        return
    shipment = conn.execute(
        sa.select(shipments.c.id).where(shipments.c.order_id == order_id, shipments.c.status != "cancelled")
    ).first()
    if shipment is None:
        trace.get_current_span().set_status(Status(StatusCode.ERROR, f"no shipment for order {order_id[:64]}"))
        return
    tracking_number = f"SPY{uuid.uuid4().hex[:10].upper()}"
    conn.execute(
        parcels.insert().values(
            order_id=order_id, shipment_id=shipment.id, tracking_number=tracking_number, prepared_ns=time.time_ns()
        )
    )
    outbox.publish(
        conn,
        SHIPMENT_PREPARED,
        {
            "order_id": order_id,
            "user_id": message.payload.get("user_id"),
            "shipment_id": shipment.id,
            "tracking_number": tracking_number,
        },
    )


def _set_status(engine: sa.Engine, shipment_id: str, status: str) -> Response:
    with engine.begin() as conn:
        row = conn.execute(sa.select(shipments).where(shipments.c.id == shipment_id)).mappings().first()
        if row is None:
            return error_response(404, f"no shipment {shipment_id}")
        if row["status"] not in ("scheduled", status):
            return error_response(409, f"shipment {shipment_id} is {row['status']}")
        conn.execute(shipments.update().where(shipments.c.id == shipment_id).values(status=status))
    return jsonify(id=shipment_id, status=status)


def main() -> None:
    """Run the shipping process."""
    main_for("shipping", create_service)


if __name__ == "__main__":
    main()
