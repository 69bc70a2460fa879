"""Orders service: the order saga's orchestrator, the order event log and its events.

``POST /orders`` runs the order saga: create order -> reserve payment -> reserve
inventory -> schedule shipping -> commit (capture, commit, confirm). A failed step makes
the orchestrator compensate the completed steps in reverse order (unless the
``skip_compensation`` control switch is on: then the saga ends failed, uncompensated). Placing or cancelling
an order writes the event to the outbox in the same transaction; the relay delivers it
to notifications.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

from flask import Response, jsonify, request
from opentelemetry import trace

from demo_services.client import ServiceClient, UpstreamError
from demo_services.order_log import (
    ITEM_ADDED,
    ORDER_CANCELLED,
    ORDER_CREATED,
    ORDER_PLACED,
    QUANTITY_UPDATED,
    OrderLog,
    build_read_model,
)
from demo_services.order_log import metadata as order_metadata
from demo_services.patterns.events import Message, Outbox, OutboxRelay
from demo_services.patterns.saga import SagaOrchestrator, SagaStep, SagaStepError
from demo_services.service import (
    Service,
    ServiceSettings,
    create_schema,
    error_response,
    main_for,
    make_service,
)

SAGA_NAME = "order"
DEPENDS_ON = ["inventory", "payment", "shipping", "notifications"]
_tracer = trace.get_tracer(__name__)


class OrderStepError(SagaStepError):
    """A step of the order saga failed; ``status`` is the HTTP status to answer with.

    A dependency that is down gives 424 (Failed Dependency), not a 5xx: the saga handled
    it, and the gateway's breaker in front of orders should not count it as a failure.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def create_service(settings: ServiceSettings) -> Service:
    """Build the orders service."""
    service = make_service("orders", settings, depends_on=DEPENDS_ON)
    app, engine = service.app, service.engine
    assert engine is not None and service.discovery is not None
    client = ServiceClient(
        "orders",
        service.discovery,
        timeout_s=settings.call_timeout_s,
        failure_threshold=settings.breaker_failures,
        reset_after_s=settings.breaker_reset_s,
        bypass=lambda: service.chaos.bypass_breakers,
    )
    log = OrderLog(engine)
    outbox = Outbox(order_metadata, _tracer)
    create_schema(engine, order_metadata)
    saga = SagaOrchestrator(
        SAGA_NAME,
        _order_steps(client, log, outbox, engine),
        tracer=_tracer,
        failure_types=(OrderStepError,),
        skip_compensation=lambda: service.chaos.skip_compensation,
    )

    def deliver(message: Message) -> None:
        response = client.request("notifications", "POST", "/events", json=message.to_json())
        if response.status_code >= 400:
            raise UpstreamError("notifications", f"event refused: {response.status_code}")

    relay = OutboxRelay(
        outbox,
        engine,
        deliver,
        delivery_errors=(UpstreamError,),
        interval_s=settings.relay_interval_s,
    )
    service.background.append(relay.start)

    @app.post("/orders")
    def place_order() -> tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        try:
            items = _parse_items(body.get("items"))
            user_id = int(body["user_id"])
        except (KeyError, TypeError, ValueError) as err:
            return error_response(400, f"user_id and items [{{product_id, quantity}}]: {err}"), 400
        order_id = uuid.uuid4().hex[:16]
        context: dict[str, Any] = {
            "order_id": order_id,
            "user_id": user_id,
            "items": items,
            "card": str(body.get("card") or "4242424242424242"),
        }
        result = saga.run(context)
        answer = {
            "order_id": order_id,
            "saga_id": result.saga_id,
            "outcome": result.outcome,
            "failed_step": result.failed_step,
            "error": str(result.error) if result.error else None,
            "compensated": result.compensated,
            "order": log.get(order_id),
        }
        if result.outcome == "completed":
            return jsonify(answer), 201
        status = result.error.status if isinstance(result.error, OrderStepError) else 500
        return jsonify(answer), status

    @app.get("/orders")
    def list_orders() -> Response:
        return jsonify(orders=list(log.all().values()))

    @app.get("/orders/events")
    def all_events() -> Response:
        return jsonify(events=[e.__dict__ for e in log.events()])

    @app.post("/orders/read-model/rebuild")
    def rebuild() -> Response:
        before = log.all()
        count = log.rebuild()
        return jsonify(orders=count, unchanged=before == log.all())

    @app.get("/orders/<order_id>")
    def get_order(order_id: str) -> Response:
        doc = log.get(order_id)
        if doc is None:
            return error_response(404, f"no order {order_id}")
        return jsonify(doc)

    @app.get("/orders/<order_id>/events")
    def order_events(order_id: str) -> Response:
        events = log.events(order_id)
        if not events:
            return error_response(404, f"no order {order_id}")
        return jsonify(events=[e.__dict__ for e in events], rebuilt=build_read_model(events).get(order_id))

    return service


def _parse_items(raw: Any) -> list[dict[str, int]]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("items must be a non-empty list")
    items = [{"product_id": int(i["product_id"]), "quantity": int(i["quantity"])} for i in raw]
    if any(i["quantity"] <= 0 for i in items):
        raise ValueError("quantities must be positive")
    return items


def _order_steps(client: ServiceClient, log: OrderLog, outbox: Outbox, engine: Any) -> list[SagaStep]:
    """Return the order saga's steps, each a call plus the call that undoes it."""

    def call(service: str, method: str, path: str, json: Any = None, ok: tuple = (200, 201)) -> Any:
        try:
            response = client.request(service, method, path, json=json)
        except UpstreamError as err:
            raise OrderStepError(str(err), 424) from err
        if response.status_code not in ok:
            message = response.json().get("error", response.text) if response.content else ""
            raise OrderStepError(f"{service}: {message}", response.status_code)
        return response.json()

    def create_order(ctx: dict[str, Any]) -> None:
        ids = ",".join(sorted({str(i["product_id"]) for i in ctx["items"]}))
        products = call("inventory", "GET", f"/products?ids={ids}")["products"]
        prices = {p["id"]: p["price_cents"] for p in products}
        missing = {i["product_id"] for i in ctx["items"]} - set(prices)
        if missing:
            raise OrderStepError(f"unknown products {sorted(missing)}", 404)
        quantities: OrderedDict[int, int] = OrderedDict()
        with engine.begin() as conn:
            log.append(
                conn,
                ctx["order_id"],
                ORDER_CREATED,
                {"user_id": ctx["user_id"], "saga_id": ctx["saga_id"]},
            )
            for item in ctx["items"]:
                pid = item["product_id"]
                if pid in quantities:
                    quantities[pid] += item["quantity"]
                    log.append(
                        conn,
                        ctx["order_id"],
                        QUANTITY_UPDATED,
                        {"product_id": pid, "quantity": quantities[pid]},
                    )
                else:
                    quantities[pid] = item["quantity"]
                    log.append(
                        conn,
                        ctx["order_id"],
                        ITEM_ADDED,
                        {
                            "product_id": pid,
                            "quantity": item["quantity"],
                            "unit_price_cents": prices[pid],
                        },
                    )
        ctx["amount_cents"] = sum(q * prices[p] for p, q in quantities.items())
        ctx["reserved_items"] = [{"product_id": p, "quantity": q} for p, q in quantities.items()]

    def cancel_order(ctx: dict[str, Any]) -> None:
        reason = str(ctx.get("failure", "saga compensated"))
        with engine.begin() as conn:
            log.append(conn, ctx["order_id"], ORDER_CANCELLED, {"reason": reason})
            outbox.publish(
                conn,
                ORDER_CANCELLED,
                {"order_id": ctx["order_id"], "user_id": ctx["user_id"], "reason": reason},
            )

    def reserve_payment(ctx: dict[str, Any]) -> None:
        try:
            payment = call(
                "payment",
                "POST",
                "/payments",
                {
                    "order_id": ctx["order_id"],
                    "amount_cents": ctx["amount_cents"],
                    "card": ctx["card"],
                },
            )
        except OrderStepError as err:
            ctx["failure"] = str(err)
            raise
        ctx["payment_id"] = payment["id"]

    def void_payment(ctx: dict[str, Any]) -> None:
        call("payment", "POST", f"/payments/{ctx['payment_id']}/void")

    def reserve_inventory(ctx: dict[str, Any]) -> None:
        try:
            call(
                "inventory",
                "POST",
                "/reservations",
                {"order_id": ctx["order_id"], "items": ctx["reserved_items"]},
            )
        except OrderStepError as err:
            ctx["failure"] = str(err)
            raise

    def release_inventory(ctx: dict[str, Any]) -> None:
        call("inventory", "DELETE", f"/reservations/{ctx['order_id']}")

    def schedule_shipping(ctx: dict[str, Any]) -> None:
        try:
            shipment = call("shipping", "POST", "/shipments", {"order_id": ctx["order_id"]})
        except OrderStepError as err:
            ctx["failure"] = str(err)
            raise
        ctx["shipment_id"] = shipment["id"]

    def cancel_shipping(ctx: dict[str, Any]) -> None:
        call("shipping", "DELETE", f"/shipments/{ctx['shipment_id']}")

    def commit(ctx: dict[str, Any]) -> None:
        try:
            call("payment", "POST", f"/payments/{ctx['payment_id']}/capture")
            call("inventory", "POST", f"/reservations/{ctx['order_id']}/commit")
            call("shipping", "POST", f"/shipments/{ctx['shipment_id']}/confirm")
        except OrderStepError as err:
            ctx["failure"] = str(err)
            raise
        with engine.begin() as conn:
            log.append(
                conn,
                ctx["order_id"],
                ORDER_PLACED,
                {"payment_id": ctx["payment_id"], "shipment_id": ctx["shipment_id"]},
            )
            outbox.publish(
                conn,
                ORDER_PLACED,
                {
                    "order_id": ctx["order_id"],
                    "user_id": ctx["user_id"],
                    "total_cents": ctx["amount_cents"],
                    "saga_id": ctx["saga_id"],
                },
            )

    return [
        SagaStep("create_order", create_order, cancel_order),
        SagaStep("reserve_payment", reserve_payment, void_payment),
        SagaStep("reserve_inventory", reserve_inventory, release_inventory),
        SagaStep("schedule_shipping", schedule_shipping, cancel_shipping),
        SagaStep("commit", commit),
    ]


def main() -> None:
    """Run the orders process."""
    main_for("orders", create_service)


if __name__ == "__main__":
    main()
