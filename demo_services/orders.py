"""Orders service: the order saga's orchestrator, the order event log and its events.

``POST /orders`` runs the order saga. Its first four steps can be undone (create order,
reserve payment, reserve inventory, schedule shipping); capturing the payment is the pivot;
the last three (commit inventory, confirm shipping, complete order) only go forward. A
failure before the pivot compensates the completed steps in reverse order (unless the
``skip_compensation`` control switch is on: then the saga ends failed, uncompensated); a
transient failure after it is retried, here and then in the background, until it is done.
The saga log lives in the orders database: on start-up, and every second after, orders
resumes every saga a previous process (or a request) left unfinished. The ``hold_at``
control switch holds a saga before the step it names (or an order command before it
appends the event it names, as ``append OrderPlaced``).

Orders are event-sourced: each command loads the order from its stream and appends with an
expected version (see order_log.py). Placing or cancelling an order writes the event to the
outbox in the same transaction; the relay delivers it to its subscribers (messaging.py).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

from flask import Response, jsonify, request
from opentelemetry import trace

from demo_services.chaos_switches import hold_while
from demo_services.client import ServiceClient, UpstreamError, retry_after
from demo_services.messaging import deliver_to_subscribers
from demo_services.order_log import (
    ITEM_ADDED,
    NOTE_ADDED,
    ORDER_CANCELLED,
    ORDER_CREATED,
    ORDER_PLACED,
    QUANTITY_UPDATED,
    NewEvents,
    OrderAggregate,
    OrderLog,
    VersionConflict,
    build_read_model,
)
from demo_services.order_log import metadata as order_metadata
from demo_services.patterns.events import Outbox, OutboxRelay
from demo_services.patterns.retry import RETRY_ATTEMPT, current_attempt
from demo_services.patterns.saga import (
    COMPLETED,
    KIND_PIVOT,
    KIND_RETRIABLE,
    PENDING,
    SagaOrchestrator,
    SagaStep,
    SagaStepError,
)
from demo_services.patterns.saga_log import FINISHED, UNFINISHED, SagaLog
from demo_services.patterns.saga_recovery import SagaRecovery
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
RESUME_INTERVAL_S = 1.0
TRANSIENT_STATUSES = (429,)
"""4xx answers worth retrying (with their Retry-After); every other 4xx is final."""
MAX_NOTE = 500
_tracer = trace.get_tracer(__name__)


class OrderStepError(SagaStepError):
    """A step of the order saga failed; ``status`` is the HTTP status to answer with.

    A dependency that is down gives 424 (Failed Dependency), not a 5xx: the saga handled
    it, and the gateway's breaker in front of orders should not count it as a failure.
    ``transient`` (a refused connection, a timeout, a 5xx, a 429) makes the saga retry it.
    """

    def __init__(
        self, message: str, status: int, *, transient: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, transient=transient, retry_after_s=retry_after_s)
        self.status = status


def create_service(settings: ServiceSettings) -> Service:
    """Build the orders service."""
    service = make_service("orders", settings, depends_on=DEPENDS_ON)
    app, engine, chaos = service.app, service.engine, service.chaos
    assert engine is not None and service.discovery is not None
    client = ServiceClient(
        "orders",
        service.discovery,
        timeout_s=settings.call_timeout_s,
        failure_threshold=settings.breaker_failures,
        reset_after_s=settings.breaker_reset_s,
        bypass=lambda: service.chaos.bypass_breakers,
    )
    log = OrderLog(engine, hold=lambda point: hold_while(chaos, point))
    outbox = Outbox(order_metadata, _tracer, conversation_key="order_id")
    saga_log = SagaLog(engine, order_metadata)
    create_schema(engine, order_metadata)
    saga = SagaOrchestrator(
        SAGA_NAME,
        _order_steps(client, log, outbox),
        tracer=_tracer,
        failure_types=(OrderStepError,),
        log=saga_log,
        skip_compensation=lambda: chaos.skip_compensation,
        before_step=lambda step: hold_while(chaos, step),
    )

    relay = OutboxRelay(
        outbox,
        engine,
        deliver_to_subscribers(client),
        delivery_errors=(UpstreamError,),
        interval_s=settings.relay_interval_s,
    )
    service.background.append(relay.start)
    recovery = SagaRecovery(saga, saga_log)
    service.background.append(lambda: recovery.start(RESUME_INTERVAL_S))

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
            "_card": str(body.get("card") or "4242424242424242"),
        }
        result = saga.run(context)
        answer = {
            "order_id": order_id,
            "saga_id": result.saga_id,
            "outcome": result.outcome,
            "failed_step": result.failed_step,
            "error": str(result.error) if result.error else None,
            "compensated": result.compensated,
            "pending": result.pending,
            "order": log.get(order_id),
        }
        if result.outcome == COMPLETED:
            return jsonify(answer), 201
        if result.outcome == PENDING and result.pending == result.failed_step:
            return jsonify(answer), 202  # placed: the steps after the pivot finish later
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
        return jsonify(log.rebuild())

    @app.get("/orders/sagas")
    def list_sagas() -> tuple[Response, int] | Response:
        status = request.args.get("status", "")
        if status and status not in (*FINISHED, *UNFINISHED):
            return error_response(400, f"unknown saga status {status[:50]!r}"), 400
        records = saga_log.unfinished() if status in UNFINISHED else saga_log.recent()
        return jsonify(sagas=[r.public() for r in records if not status or r.status == status])

    @app.get("/orders/sagas/<saga_id>")
    def get_saga(saga_id: str) -> tuple[Response, int] | Response:
        record = saga_log.get(saga_id)
        if record is None:
            return error_response(404, f"no saga {saga_id[:100]}"), 404
        return jsonify(record.public())

    @app.get("/orders/<order_id>")
    def get_order(order_id: str) -> Response:
        doc = log.get(order_id)
        if doc is None:
            return error_response(404, f"no order {order_id}")
        return jsonify(doc)

    @app.post("/orders/<order_id>/notes")
    def add_note(order_id: str) -> tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_NOTE:
            return error_response(400, f"text must be a non-empty string of at most {MAX_NOTE} characters"), 400

        def decide(order: OrderAggregate) -> NewEvents:
            if order.state is None:
                raise LookupError(order_id)
            return [(NOTE_ADDED, {"text": text})]

        try:
            events = log.execute("AddNote", order_id, decide)
        except LookupError:
            return error_response(404, f"no order {order_id}"), 404
        except VersionConflict as err:
            return error_response(409, str(err)), 409
        return jsonify(order=log.get(order_id), version=events[-1].version), 201

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


def _order_steps(client: ServiceClient, log: OrderLog, outbox: Outbox) -> list[SagaStep]:
    """Return the order saga's steps: four that can be undone, the pivot (capturing the
    payment), and three that are carried forward until they are done."""

    def call(service: str, method: str, path: str, json: Any = None, ok: tuple = (200, 201)) -> Any:
        attempt = current_attempt()
        attributes = {RETRY_ATTEMPT: attempt} if attempt > 1 else None
        try:
            response = client.request(service, method, path, json=json, attributes=attributes)
        except UpstreamError as err:
            raise OrderStepError(str(err), 424, transient=True, retry_after_s=err.retry_after_s) from err
        if response.status_code not in ok:
            message = response.json().get("error", response.text) if response.content else ""
            raise OrderStepError(
                f"{service}: {message}",
                response.status_code,
                transient=response.status_code in TRANSIENT_STATUSES,
                retry_after_s=retry_after(response),
            )
        return response.json()

    def create_order(ctx: dict[str, Any]) -> None:
        ids = ",".join(sorted({str(i["product_id"]) for i in ctx["items"]}))
        products = call("inventory", "GET", f"/products?ids={ids}")["products"]
        prices = {p["id"]: p["price_cents"] for p in products}
        missing = {i["product_id"] for i in ctx["items"]} - set(prices)
        if missing:
            raise OrderStepError(f"unknown products {sorted(missing)}", 404)

        def decide(order: OrderAggregate) -> NewEvents:
            if order.state is not None:
                return []  # created already
            new: NewEvents = [(ORDER_CREATED, {"user_id": ctx["user_id"], "saga_id": ctx["saga_id"]})]
            quantities: OrderedDict[int, int] = OrderedDict()
            for item in ctx["items"]:
                pid = item["product_id"]
                if pid in quantities:
                    quantities[pid] += item["quantity"]
                    new.append((QUANTITY_UPDATED, {"product_id": pid, "quantity": quantities[pid]}))
                else:
                    quantities[pid] = item["quantity"]
                    new.append(
                        (
                            ITEM_ADDED,
                            {"product_id": pid, "quantity": item["quantity"], "unit_price_cents": prices[pid]},
                        )
                    )
            return new

        log.execute("CreateOrder", ctx["order_id"], decide)
        quantities: OrderedDict[int, int] = OrderedDict()
        for item in ctx["items"]:
            quantities[item["product_id"]] = quantities.get(item["product_id"], 0) + item["quantity"]
        ctx["amount_cents"] = sum(q * prices[p] for p, q in quantities.items())
        ctx["reserved_items"] = [{"product_id": p, "quantity": q} for p, q in quantities.items()]

    def cancel_order(ctx: dict[str, Any]) -> None:
        reason = str(ctx.get("saga_error") or "saga compensated")

        def decide(order: OrderAggregate) -> NewEvents:
            return [] if order.status in (None, "cancelled") else [(ORDER_CANCELLED, {"reason": reason})]

        def publish(conn: Any, _events: list) -> None:
            outbox.publish(
                conn,
                ORDER_CANCELLED,
                {"order_id": ctx["order_id"], "user_id": ctx["user_id"], "reason": reason},
            )

        log.execute("CancelOrder", ctx["order_id"], decide, publish)

    def reserve_payment(ctx: dict[str, Any]) -> None:
        body = {"order_id": ctx["order_id"], "amount_cents": ctx["amount_cents"], "card": ctx["_card"]}
        ctx["payment_id"] = call("payment", "POST", "/payments", body)["id"]

    def void_payment(ctx: dict[str, Any]) -> None:
        call("payment", "POST", f"/payments/{ctx['payment_id']}/void")

    def reserve_inventory(ctx: dict[str, Any]) -> None:
        call("inventory", "POST", "/reservations", {"order_id": ctx["order_id"], "items": ctx["reserved_items"]})

    def release_inventory(ctx: dict[str, Any]) -> None:
        call("inventory", "DELETE", f"/reservations/{ctx['order_id']}")

    def schedule_shipping(ctx: dict[str, Any]) -> None:
        ctx["shipment_id"] = call("shipping", "POST", "/shipments", {"order_id": ctx["order_id"]})["id"]

    def cancel_shipping(ctx: dict[str, Any]) -> None:
        call("shipping", "DELETE", f"/shipments/{ctx['shipment_id']}")

    def capture_payment(ctx: dict[str, Any]) -> None:
        call("payment", "POST", f"/payments/{ctx['payment_id']}/capture")

    def commit_inventory(ctx: dict[str, Any]) -> None:
        call("inventory", "POST", f"/reservations/{ctx['order_id']}/commit")

    def confirm_shipping(ctx: dict[str, Any]) -> None:
        call("shipping", "POST", f"/shipments/{ctx['shipment_id']}/confirm")

    def complete_order(ctx: dict[str, Any]) -> None:
        def decide(order: OrderAggregate) -> NewEvents:
            if order.status == "placed":
                return []  # placed already (a repeat after a restart)
            if order.status != "pending":
                raise OrderStepError(f"order {ctx['order_id']} is {order.status}", 409)
            return [(ORDER_PLACED, {"payment_id": ctx["payment_id"], "shipment_id": ctx["shipment_id"]})]

        def publish(conn: Any, _events: list) -> None:
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

        try:
            log.execute("PlaceOrder", ctx["order_id"], decide, publish)
        except VersionConflict as err:  # still conflicting after its retries: try again later
            raise OrderStepError(str(err), 409, transient=True) from err

    return [
        SagaStep("create_order", create_order, cancel_order),
        SagaStep("reserve_payment", reserve_payment, void_payment),
        SagaStep("reserve_inventory", reserve_inventory, release_inventory),
        SagaStep("schedule_shipping", schedule_shipping, cancel_shipping),
        SagaStep("capture_payment", capture_payment, kind=KIND_PIVOT),
        SagaStep("commit_inventory", commit_inventory, kind=KIND_RETRIABLE),
        SagaStep("confirm_shipping", confirm_shipping, kind=KIND_RETRIABLE),
        SagaStep("complete_order", complete_order, kind=KIND_RETRIABLE),
    ]


def main() -> None:
    """Run the orders process."""
    main_for("orders", create_service)


if __name__ == "__main__":
    main()
