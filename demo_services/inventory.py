"""Inventory service: products, stock and reservations.

Runs as two instances sharing the service's one database file (database per service,
not per process), so a reservation made through one instance can be committed or
released through the other.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Response, jsonify, request
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from demo_services.service import (
    Service,
    ServiceSettings,
    create_schema,
    error_response,
    main_for,
    make_service,
)

metadata = sa.MetaData()
products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("price_cents", sa.Integer, nullable=False),
    sa.Column("stock", sa.Integer, nullable=False),
)
reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("order_id", sa.String, primary_key=True),
    sa.Column("items", sa.Text, nullable=False),
    sa.Column("status", sa.String, nullable=False),
)
SEED = [
    (1, "Telescope", 24900),
    (2, "Star chart", 1500),
    (3, "Eyepiece 25mm", 4900),
    (4, "Tripod", 8900),
    (5, "Red torch", 900),
]
INITIAL_STOCK = 100_000


def create_service(settings: ServiceSettings) -> Service:
    """Build one inventory instance."""
    service = make_service("inventory", settings)
    app, engine, chaos = service.app, service.engine, service.chaos
    assert engine is not None
    create_schema(engine, metadata)
    with engine.begin() as conn:
        conn.execute(
            sqlite_insert(products).on_conflict_do_nothing(index_elements=["id"]),
            [{"id": i, "name": n, "price_cents": p, "stock": INITIAL_STOCK} for i, n, p in SEED],
        )

    @app.get("/products")
    def list_products() -> Response:
        query = sa.select(products).order_by(products.c.id)
        ids = request.args.get("ids")
        if ids:
            try:
                wanted = [int(i) for i in ids.split(",")]
            except ValueError:
                return error_response(400, f"ids must be comma-separated integers, got {ids!r}")
            query = query.where(products.c.id.in_(wanted))
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return jsonify(products=[dict(r) for r in rows])

    @app.get("/products/<int:product_id>")
    def get_product(product_id: int) -> Response:
        with engine.connect() as conn:
            row = conn.execute(sa.select(products).where(products.c.id == product_id)).mappings().first()
        if row is None:
            return error_response(404, f"no product {product_id}")
        return jsonify(dict(row))

    @app.post("/reservations")
    def reserve() -> tuple[Response, int] | Response:
        body = request.get_json(silent=True) or {}
        order_id, items = body.get("order_id"), body.get("items")
        if not isinstance(order_id, str) or not isinstance(items, list) or not items:
            return error_response(400, "order_id and a non-empty items list are required")
        if chaos.out_of_stock:
            return error_response(409, "out of stock (injected)")
        try:
            status = _reserve(engine, order_id, items)
        except _OutOfStockError as err:
            return error_response(409, str(err))
        return jsonify(order_id=order_id, status=status), 201

    @app.post("/reservations/<order_id>/commit")
    def commit(order_id: str) -> Response:
        return _set_status(engine, order_id, "committed")

    @app.delete("/reservations/<order_id>")
    def release(order_id: str) -> Response:
        return _set_status(engine, order_id, "released")

    return service


class _OutOfStockError(Exception):
    """A reservation asked for more than is in stock; its transaction rolls back."""


def _reserve(engine: sa.Engine, order_id: str, items: list[dict]) -> str:
    """Take ``items`` out of stock for ``order_id`` in one transaction (idempotent)."""
    with engine.begin() as conn:
        existing = conn.execute(sa.select(reservations).where(reservations.c.order_id == order_id)).mappings().first()
        if existing is not None:
            return str(existing["status"])
        for item in items:
            updated = conn.execute(
                products.update()
                .where(products.c.id == int(item["product_id"]))
                .where(products.c.stock >= int(item["quantity"]))
                .values(stock=products.c.stock - int(item["quantity"]))
            ).rowcount
            if not updated:
                raise _OutOfStockError(f"product {item['product_id']} out of stock")
        conn.execute(reservations.insert().values(order_id=order_id, items=json.dumps(items), status="reserved"))
    return "reserved"


def _set_status(engine: sa.Engine, order_id: str, status: str) -> Response:
    """Commit or release a reservation; releasing puts its items back in stock."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(reservations).where(reservations.c.order_id == order_id)).mappings().first()
        if row is None:
            return error_response(404, f"no reservation for order {order_id}")
        if row["status"] == status:
            return jsonify(order_id=order_id, status=status)
        if row["status"] != "reserved":
            return error_response(409, f"reservation for {order_id} is {row['status']}")
        if status == "released":
            for item in json.loads(row["items"]):
                conn.execute(
                    products.update()
                    .where(products.c.id == int(item["product_id"]))
                    .values(stock=products.c.stock + int(item["quantity"]))
                )
        conn.execute(reservations.update().where(reservations.c.order_id == order_id).values(status=status))
    return jsonify(order_id=order_id, status=status)


def main() -> None:
    """Run one inventory instance."""
    main_for("inventory", create_service)


if __name__ == "__main__":
    main()
