"""Users service: a small customer directory in its own database."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, jsonify

from demo_services.service import (
    Service,
    ServiceSettings,
    create_schema,
    error_response,
    main_for,
    make_service,
)

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("email", sa.String, nullable=False),
)
SEED = [
    (1, "Ada Lovelace", "ada@example.com"),
    (2, "Alan Turing", "alan@example.com"),
    (3, "Grace Hopper", "grace@example.com"),
    (4, "Edsger Dijkstra", "edsger@example.com"),
    (5, "Barbara Liskov", "barbara@example.com"),
]


def create_service(settings: ServiceSettings) -> Service:
    """Build the users service."""
    service = make_service("users", settings)
    app, engine = service.app, service.engine
    assert engine is not None
    create_schema(engine, metadata)
    with engine.begin() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one() == 0:
            conn.execute(users.insert(), [{"id": i, "name": n, "email": e} for i, n, e in SEED])

    @app.get("/users")
    def list_users() -> Response:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.id)).mappings().all()
        return jsonify(users=[dict(r) for r in rows])

    @app.get("/users/<int:user_id>")
    def get_user(user_id: int) -> Response:
        with engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).mappings().first()
        if row is None:
            return error_response(404, f"no user {user_id}")
        return jsonify(dict(row))

    return service


def main() -> None:
    """Run the users process."""
    main_for("users", create_service)


if __name__ == "__main__":
    main()
