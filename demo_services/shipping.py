"""Shipping service: schedule, confirm and cancel shipments."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import Response, jsonify, request

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


def create_service(settings: ServiceSettings) -> Service:
    """Build the shipping service."""
    service = make_service("shipping", settings)
    app, engine = service.app, service.engine
    assert engine is not None
    create_schema(engine, metadata)

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
