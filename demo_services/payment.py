"""Payment service: authorize, capture and void card payments.

A card number ending in ``0002`` is always declined, as is every card while the
``decline`` control switch is on; a decline is a business answer (402), not a failure.
"""

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

DECLINED_CARD_SUFFIX = "0002"
metadata = sa.MetaData()
payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("order_id", sa.String, nullable=False, index=True),
    sa.Column("amount_cents", sa.Integer, nullable=False),
    sa.Column("status", sa.String, nullable=False),
)
_TRANSITIONS = {"capture": ("authorized", "captured"), "void": ("authorized", "voided")}


def create_service(settings: ServiceSettings) -> Service:
    """Build the payment service."""
    service = make_service("payment", settings)
    app, engine, chaos = service.app, service.engine, service.chaos
    assert engine is not None
    create_schema(engine, metadata)

    @app.post("/payments")
    def authorize() -> tuple[Response, int] | Response:
        body = request.get_json(silent=True) or {}
        order_id, amount, card = body.get("order_id"), body.get("amount_cents"), body.get("card")
        if not isinstance(order_id, str) or not isinstance(amount, int) or amount <= 0:
            return error_response(400, "order_id and a positive integer amount_cents are required")
        card = str(card or "4242424242424242")
        if chaos.decline or card.endswith(DECLINED_CARD_SUFFIX):
            return error_response(402, "card declined")
        payment_id = uuid.uuid4().hex[:16]
        with engine.begin() as conn:
            conn.execute(
                payments.insert().values(id=payment_id, order_id=order_id, amount_cents=amount, status="authorized")
            )
        return jsonify(id=payment_id, order_id=order_id, status="authorized"), 201

    @app.post("/payments/<payment_id>/<action>")
    def transition(payment_id: str, action: str) -> Response:
        if action not in _TRANSITIONS:
            return error_response(404, f"unknown payment action {action!r}")
        before, after = _TRANSITIONS[action]
        with engine.begin() as conn:
            row = conn.execute(sa.select(payments).where(payments.c.id == payment_id)).mappings().first()
            if row is None:
                return error_response(404, f"no payment {payment_id}")
            if row["status"] not in (before, after):
                return error_response(409, f"payment {payment_id} is {row['status']}")
            conn.execute(payments.update().where(payments.c.id == payment_id).values(status=after))
        return jsonify(id=payment_id, status=after)

    @app.get("/payments/<payment_id>")
    def get_payment(payment_id: str) -> Response:
        with engine.connect() as conn:
            row = conn.execute(sa.select(payments).where(payments.c.id == payment_id)).mappings().first()
        if row is None:
            return error_response(404, f"no payment {payment_id}")
        return jsonify(dict(row))

    return service


def main() -> None:
    """Run the payment process."""
    main_for("payment", create_service)


if __name__ == "__main__":
    main()
