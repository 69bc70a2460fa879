"""Spans that follow DESIGN.md's pattern conventions, made with the real OpenTelemetry SDK,
as any user's own services would send them (no demo involved)."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

Factory = Callable[..., trace.TracerProvider]


def tracer(factory: Factory, service: str, **resource: object) -> trace.Tracer:
    """A tracer of a fresh provider for ``service``."""
    return factory(service, **resource).get_tracer("spyglass-tests")


def order_flow(factory: Factory, *, fail_payment: bool = False, inventory_instance: str = "inventory-1") -> str:
    """gateway -> orders (sync, through a breaker) -> payment and inventory, orders -> its
    database, orders publishes an event that notifications consumes. Returns the trace id."""
    gw, orders, payment = tracer(factory, "gateway"), tracer(factory, "orders"), tracer(factory, "payment")
    inventory = tracer(factory, "inventory", **{"service.instance.id": inventory_instance})
    notifications = tracer(factory, "notifications")
    with gw.start_as_current_span("GET /api/orders", kind=SpanKind.SERVER) as root:
        with gw.start_as_current_span("POST orders", kind=SpanKind.CLIENT, attributes={"peer.service": "orders"}):
            with orders.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
                with orders.start_as_current_span(
                    "INSERT orders", kind=SpanKind.CLIENT, attributes={"db.system": "sqlite", "db.name": "orders.db"}
                ):
                    pass
                attrs = {"circuit_breaker.name": "orders->payment", "circuit_breaker.state": "closed"}
                with orders.start_as_current_span("POST payment", kind=SpanKind.CLIENT, attributes=attrs) as call:
                    with payment.start_as_current_span("POST /charge", kind=SpanKind.SERVER) as charge:
                        if fail_payment:
                            charge.set_status(Status(StatusCode.ERROR, "card declined"))
                    if fail_payment:
                        call.set_status(Status(StatusCode.ERROR, "payment failed"))
                with orders.start_as_current_span("POST inventory", kind=SpanKind.CLIENT):
                    with inventory.start_as_current_span("POST /reserve", kind=SpanKind.SERVER):
                        pass
                with orders.start_as_current_span(
                    "publish OrderPlaced", kind=SpanKind.PRODUCER, attributes={"messaging.system": "outbox"}
                ):
                    with notifications.start_as_current_span("process OrderPlaced", kind=SpanKind.CONSUMER):
                        pass
        return format(root.get_span_context().trace_id, "032x")


def breaker_opens(factory: Factory, failures: int = 3, rejected: int = 2) -> tuple[str, str]:
    """Calls through ``orders->payment`` fail until the breaker opens, then are rejected.
    Returns (trace id, span id) of the call whose span carries the state change."""
    orders, payment = tracer(factory, "orders"), tracer(factory, "payment")
    name = {"circuit_breaker.name": "orders->payment"}
    opened = ("", "")
    for i in range(failures):
        with orders.start_as_current_span(
            "POST payment", kind=SpanKind.CLIENT, attributes={**name, "circuit_breaker.state": "closed"}
        ) as call:
            with payment.start_as_current_span("POST /charge", kind=SpanKind.SERVER) as server:
                server.set_status(Status(StatusCode.ERROR, "timeout"))
            call.set_status(Status(StatusCode.ERROR, "timeout"))
            if i == failures - 1:
                call.add_event(
                    "circuit_breaker.state_change",
                    {
                        **name,
                        "circuit_breaker.state.from": "closed",
                        "circuit_breaker.state.to": "open",
                        "circuit_breaker.failure_count": failures,
                    },
                )
                ctx = call.get_span_context()
                opened = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
    for _ in range(rejected):
        with orders.start_as_current_span(
            "POST payment",
            kind=SpanKind.CLIENT,
            attributes={**name, "circuit_breaker.state": "open", "circuit_breaker.rejected": True},
        ) as call:
            call.set_status(Status(StatusCode.ERROR, "circuit open"))
    return opened


def saga(
    factory: Factory,
    saga_id: str,
    steps: list[str],
    fail_at: int | None,
    compensations: list[str] | None = None,
    name: str = "order",
) -> str:
    """An orchestrated saga. Compensations default to the completed steps in reverse;
    pass ``compensations`` to run a (possibly wrong) list instead. Returns the trace id."""
    orders = tracer(factory, "orders")
    base = {"saga.name": name, "saga.id": saga_id}
    with orders.start_as_current_span(f"saga {name}", attributes=base) as root:
        done = []
        for i, step in enumerate(steps):
            with orders.start_as_current_span(
                f"{step}", attributes={**base, "saga.step": step, "saga.step.index": i, "saga.phase": "action"}
            ) as span:
                if fail_at == i:
                    span.set_status(Status(StatusCode.ERROR, f"{step} failed"))
            if fail_at == i:
                break
            done.append((i, step))
        if fail_at is not None:
            todo = compensations if compensations is not None else [s for _, s in reversed(done)]
            for step in todo:
                with orders.start_as_current_span(
                    f"undo {step}",
                    attributes={
                        **base,
                        "saga.step": step,
                        "saga.step.index": steps.index(step),
                        "saga.phase": "compensation",
                    },
                ):
                    pass
        root.set_attribute("saga.outcome", "completed" if fail_at is None else "compensated")
        return format(root.get_span_context().trace_id, "032x")


def failover(factory: Factory, service: str = "orders", instance: str = "inventory-1", error: str = "refused") -> str:
    """A call from ``service`` that gave up on ``instance`` and went on to the next one, as
    the discovery client records it. Returns the span id of the call."""
    caller = tracer(factory, service)
    with caller.start_as_current_span("POST inventory", kind=SpanKind.CLIENT) as call:
        call.add_event("discovery.failover", {"discovery.instance.id": instance, "discovery.failover.reason": error})
        return format(call.get_span_context().span_id, "016x")


def discovery_failover(factory: Factory, reason: str = "connection refused") -> str:
    """orders calls inventory through discovery (docs/conventions.md "Service discovery"):
    a cache miss asks the registry under a lookup span, inventory-1 fails and the call
    fails over to inventory-2 in a second CLIENT span. Returns the trace id."""
    orders, registry = tracer(factory, "orders"), tracer(factory, "registry")
    inventory_2 = tracer(factory, "inventory", **{"service.instance.id": "inventory-2"})
    found = {"discovery.cache.hit": False, "discovery.candidates": ["inventory-1", "inventory-2"]}
    with orders.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as root:
        with orders.start_as_current_span(
            "POST inventory", kind=SpanKind.CLIENT, attributes={"peer.service": "inventory", **found}
        ) as call:
            with orders.start_as_current_span(
                "discovery.lookup inventory",
                kind=SpanKind.CLIENT,
                attributes={"peer.service": "registry", "discovery.service": "inventory", **found},
            ):
                with registry.start_as_current_span("GET /services/<name>", kind=SpanKind.SERVER):
                    pass
            call.set_attribute("discovery.instance.id", "inventory-1")
            call.set_attribute("discovery.failed_over", True)
            call.add_event(
                "discovery.failover",
                {
                    "discovery.instance.id": "inventory-1",
                    "discovery.failover.reason": reason,
                    "error.type": "ConnectionError",
                    "discovery.next_instance.id": "inventory-2",
                },
            )
            with orders.start_as_current_span(
                "POST inventory",
                kind=SpanKind.CLIENT,
                attributes={
                    "peer.service": "inventory",
                    "http.request.resend_count": 1,
                    "discovery.instance.id": "inventory-2",
                },
            ):
                with inventory_2.start_as_current_span("POST /reservations", kind=SpanKind.SERVER):
                    pass
        return format(root.get_span_context().trace_id, "032x")
