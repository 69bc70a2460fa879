"""Service registry: instances register with a TTL, send heartbeats and are health-checked.

Written by hand: the demo shows discovery itself, so it cannot hide behind Consul or etcd.
An instance that misses heartbeats for longer than the TTL is dropped; one whose
``/health`` fails is kept but marked unhealthy, and lookups return healthy instances only.
Each registration declares the services the instance depends on (``depends_on``), so the
declared topology can be compared with the one traces show; an instance that also speaks
gRPC registers its ``grpc_url`` (host:port) beside its HTTP URL, whose ``/health`` stays
the one checked.

Only lookups are traced: each is a SERVER span under the caller's ``discovery.lookup``
span, recording the service asked for and the instances answered (docs/conventions.md).
Registrations, heartbeats, listings and health checks are bookkeeping, and a span for
each would drown the lookups in a steady trickle of traces that say nothing.
"""

from __future__ import annotations

import json
import threading
import time

import requests
import sqlalchemy as sa
from flask import Response, jsonify, request
from opentelemetry import trace
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from demo_services.patterns.discovery import CANDIDATES, DISCOVERY_SERVICE
from demo_services.service import (
    Service,
    ServiceSettings,
    create_schema,
    error_response,
    main_for,
    make_service,
)

metadata = sa.MetaData()
instances = sa.Table(
    "instances",
    metadata,
    sa.Column("instance_id", sa.String, primary_key=True),
    sa.Column("service", sa.String, nullable=False),
    sa.Column("url", sa.String, nullable=False),
    sa.Column("grpc_url", sa.String, nullable=True),
    sa.Column("depends_on", sa.Text, nullable=False),
    sa.Column("healthy", sa.Boolean, nullable=False),
    sa.Column("last_heartbeat", sa.Float, nullable=False),
)
LOOKUPS_ONLY = r"^(?!.*/services/)"
"""FlaskInstrumentor's excluded URLs for the registry: every URL but a lookup's."""


def create_service(settings: ServiceSettings) -> Service:
    """Build the registry service."""
    service = make_service("registry", settings, untraced_urls=LOOKUPS_ONLY)
    app, engine = service.app, service.engine
    assert engine is not None
    # The registry starts empty, its table made anew (with the current columns).
    instances.drop(engine, checkfirst=True)
    create_schema(engine, metadata)

    @app.post("/register")
    def register() -> tuple[Response, int] | Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) and body.get(k) for k in ("service", "instance_id", "url")
        ):
            return error_response(400, "service, instance_id and url are required strings")
        depends_on = body.get("depends_on") or []
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            return error_response(400, "depends_on must be a list of service names")
        grpc_url = body.get("grpc_url")
        if grpc_url is not None and not isinstance(grpc_url, str):
            return error_response(400, "grpc_url must be a host:port string")
        row = {
            "instance_id": body["instance_id"],
            "service": body["service"],
            "url": body["url"],
            "grpc_url": grpc_url or None,
            "depends_on": json.dumps(depends_on),
            "healthy": True,
            "last_heartbeat": time.time(),
        }
        statement = sqlite_insert(instances).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["instance_id"],
            set_={k: v for k, v in row.items() if k != "instance_id"},
        )
        with engine.begin() as conn:
            conn.execute(statement)
        return jsonify(_public(row)), 201

    @app.put("/instances/<instance_id>/heartbeat")
    def heartbeat(instance_id: str) -> Response:
        with engine.begin() as conn:
            updated = conn.execute(
                instances.update().where(instances.c.instance_id == instance_id).values(last_heartbeat=time.time())
            ).rowcount
        if not updated:
            return error_response(404, f"no instance {instance_id}; register again")
        return jsonify(status="ok")

    @app.delete("/instances/<instance_id>")
    def deregister(instance_id: str) -> Response:
        with engine.begin() as conn:
            conn.execute(instances.delete().where(instances.c.instance_id == instance_id))
        return jsonify(status="ok")

    @app.get("/instances")
    def list_instances() -> Response:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(instances).order_by(instances.c.instance_id))
            return jsonify(instances=[_public(dict(r)) for r in rows.mappings()])

    @app.get("/services/<name>")
    def lookup(name: str) -> Response:
        query = (
            sa.select(instances)
            .where(instances.c.service == name, instances.c.healthy.is_(True))
            .order_by(instances.c.instance_id)
        )
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        found = [_public(dict(r)) for r in rows]
        span = trace.get_current_span()
        span.set_attributes({DISCOVERY_SERVICE: name, CANDIDATES: [i["instance_id"] for i in found]})
        return jsonify(service=name, instances=found)

    def check_forever() -> None:
        while True:
            time.sleep(settings.heartbeat_s)
            check_instances(engine, settings.registry_ttl_s)

    service.background.append(lambda: threading.Thread(target=check_forever, name="health-check", daemon=True).start())
    return service


def check_instances(engine: sa.Engine, ttl_s: float) -> None:
    """Drop instances whose last heartbeat is older than ``ttl_s``; health-check the rest."""
    now = time.time()
    with engine.begin() as conn:
        conn.execute(instances.delete().where(instances.c.last_heartbeat < now - ttl_s))
        rows = conn.execute(sa.select(instances.c.instance_id, instances.c.url)).all()
    for instance_id, url in rows:
        try:
            healthy = requests.get(f"{url}/health", timeout=0.5).status_code == 200
        except requests.RequestException:
            healthy = False
        with engine.begin() as conn:
            conn.execute(instances.update().where(instances.c.instance_id == instance_id).values(healthy=healthy))


def _public(row: dict) -> dict:
    public = {
        "service": row["service"],
        "instance_id": row["instance_id"],
        "url": row["url"],
        "healthy": bool(row["healthy"]),
        "last_heartbeat": row["last_heartbeat"],
        "depends_on": json.loads(row["depends_on"]),
    }
    if row.get("grpc_url"):
        public["grpc_url"] = row["grpc_url"]
    return public


def main() -> None:
    """Run the registry process."""
    main_for("registry", create_service)


if __name__ == "__main__":
    main()
