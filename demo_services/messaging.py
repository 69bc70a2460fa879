"""Events between the demo services over HTTP: who subscribes to which topic, the relay's
delivery to every subscriber, and a consumer's ``POST /events`` with its inbox worker.

This is the choreographed side of the demo. Orders publishes what happened (an order was
placed or cancelled) and does not know what follows; each subscriber reacts on its own
and may publish in turn, so a chain grows without a coordinator: ``OrderPlaced`` ->
shipping prepares the parcel and publishes ``ShipmentPrepared`` -> notifications tells
the customer. Compare the orchestrated order saga (``patterns/saga.py``): one service
calls each step in turn, in one trace, and undoes the completed steps when one fails.
Here every reaction is a CONSUMER span that starts a trace of its own, linked to the
PRODUCER span that caused it; nothing is undone, a failed delivery is retried until it
succeeds, and each consumer's inbox processes a message once however often it arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import sqlalchemy as sa
from flask import Response, jsonify, request

from demo_services.client import ServiceClient, UpstreamError
from demo_services.order_log import ORDER_CANCELLED, ORDER_PLACED
from demo_services.patterns.events import Inbox, Message
from demo_services.service import Service, error_response

SHIPMENT_PREPARED = "ShipmentPrepared"
SUBSCRIBERS: Mapping[str, Sequence[str]] = {
    ORDER_PLACED: ("notifications", "shipping"),
    ORDER_CANCELLED: ("notifications",),
    SHIPMENT_PREPARED: ("notifications",),
}
"""The services each topic is delivered to, in delivery order."""

CONSUMER_UNTRACED_URLS = r"health,control,/events$"
"""FlaskInstrumentor's excluded URLs for a consumer. Its ``POST /events`` is the relay's
transport, not a call between services: traced, it would pair the relay's client span
with a server span and draw the event edge as a synchronous call. The consumer's own
view of a message is its CONSUMER ``process`` span, linked to the producer span, and
that link is what makes the producer -> consumer edge asynchronous."""

_log = logging.getLogger(__name__)


def deliver_to_subscribers(
    client: ServiceClient, subscribers: Mapping[str, Sequence[str]] = SUBSCRIBERS
) -> Callable[[Message], None]:
    """A relay's ``deliver``: POST the message to each subscriber of its topic in turn.

    Raises ``UpstreamError`` when one cannot be reached or refuses it; the relay then keeps
    the message and sends it again later, to every subscriber (those that had it already
    acknowledge the duplicate and ignore it).
    """

    def deliver(message: Message) -> None:
        for consumer in subscribers.get(message.topic, ()):
            response = client.request(consumer, "POST", "/events", json=message.to_json())
            if response.status_code >= 400:
                raise UpstreamError(consumer, f"{consumer} refused the event: {response.status_code}")

    return deliver


def consume_events(
    service: Service, inbox: Inbox, handler: Callable[[sa.Connection, Message], None], interval_s: float
) -> None:
    """Give ``service`` a ``POST /events`` that stores each message in ``inbox`` (answering
    202, a duplicate included) and a worker that processes the inbox every ``interval_s``
    with ``handler``, each message in one transaction with its effect."""
    engine = service.engine
    assert engine is not None

    @service.app.post("/events")
    def receive() -> tuple[Response, int]:
        try:
            message = Message.from_json(request.get_json(silent=True) or {})
        except (KeyError, TypeError, ValueError) as err:
            return error_response(400, f"not an event message: {err}"), 400
        new = inbox.receive(engine, message)
        return jsonify(message_id=message.message_id, duplicate=not new), 202

    def work_forever() -> None:
        while True:
            time.sleep(interval_s)
            try:
                inbox.process_pending(engine, handler)
            except sa.exc.OperationalError:  # the database was busy: the next round retries
                _log.exception("processing the inbox failed; retrying")

    service.background.append(lambda: threading.Thread(target=work_forever, name="inbox-worker", daemon=True).start())
