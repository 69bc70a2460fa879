"""Users service: a small customer directory in its own database, and the demo's login.

``POST /login`` checks a username and password (hashes kept in the ``credentials`` table)
and answers a signed access token for the gateway (see ``demo_services/tokens.py``).
Users also speaks gRPC: ``UserDirectory.GetUser`` on its gRPC port
(``SPYGLASS_DEMO_GRPC_PORT``), registered with the registry beside its HTTP URL, which
keeps /health, /control, the login and the REST routes.
"""

from __future__ import annotations

import atexit
import functools
import secrets
from typing import Any

import sqlalchemy as sa
from flask import Response, jsonify, request
from werkzeug.security import check_password_hash, generate_password_hash

from demo_services.protocol import DEMO_PASSWORD
from demo_services.service import (
    Service,
    ServiceSettings,
    create_schema,
    error_response,
    main_for,
    make_service,
)
from demo_services.tokens import TOKEN_TTL_S, issue, signing_key
from demo_services.user_directory import UserDirectoryServer

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("email", sa.String, nullable=False),
)
credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("user_id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String, nullable=False, unique=True),
    sa.Column("password_hash", sa.String, nullable=False),
)
SEED = [
    (1, "ada", "Ada Lovelace", "ada@example.com"),
    (2, "alan", "Alan Turing", "alan@example.com"),
    (3, "grace", "Grace Hopper", "grace@example.com"),
    (4, "edsger", "Edsger Dijkstra", "edsger@example.com"),
    (5, "barbara", "Barbara Liskov", "barbara@example.com"),
]


def create_service(settings: ServiceSettings) -> Service:
    """Build the users service."""
    key = signing_key(settings.jwt_key, "users")
    service = make_service("users", settings)
    app, engine = service.app, service.engine
    assert engine is not None
    create_schema(engine, metadata)
    seed(engine)

    def find_user(user_id: int) -> dict[str, Any] | None:
        with engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).mappings().first()
        return dict(row) if row is not None else None

    directory = UserDirectoryServer(
        find_user, service.chaos, "users", settings.grpc_port, settings.host, settings.reachable_host
    )
    service.grpc_url = directory.address
    service.background.append(directory.start)
    atexit.register(directory.stop)

    @app.post("/login")
    def login() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("username", "password")):
            return error_response(400, "username and password are required strings")
        with engine.connect() as conn:
            row = (
                conn.execute(sa.select(credentials).where(credentials.c.username == body["username"]))
                .mappings()
                .first()
            )
        # An unknown username is checked against a decoy hash, so it is refused as slowly.
        stored = row["password_hash"] if row is not None else _decoy_hash()
        if not check_password_hash(stored, body["password"]) or row is None:
            return error_response(401, "wrong username or password")
        token = issue(key, row["user_id"])
        return jsonify(access_token=token, token_type="Bearer", expires_in=TOKEN_TTL_S)

    @app.get("/users")
    def list_users() -> Response:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.id)).mappings().all()
        return jsonify(users=[dict(r) for r in rows])

    @app.get("/users/<int:user_id>")
    def get_user(user_id: int) -> Response:
        row = find_user(user_id)
        if row is None:
            return error_response(404, f"no user {user_id}")
        return jsonify(row)

    return service


@functools.cache
def _decoy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def seed(engine: sa.Engine) -> None:
    """Add the demo users and their credentials (password ``DEMO_PASSWORD``) where missing."""
    with engine.begin() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one() == 0:
            conn.execute(users.insert(), [{"id": i, "name": n, "email": e} for i, _u, n, e in SEED])
        if conn.execute(sa.select(sa.func.count()).select_from(credentials)).scalar_one() == 0:
            conn.execute(
                credentials.insert(),
                [
                    {"user_id": i, "username": u, "password_hash": generate_password_hash(DEMO_PASSWORD)}
                    for i, u, _n, _e in SEED
                ],
            )


def main() -> None:
    """Run the users process."""
    main_for("users", create_service)


if __name__ == "__main__":
    main()
