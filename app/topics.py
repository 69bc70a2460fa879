"""The topics of the microservice patterns Spyglass teaches, in our own words: what each
pattern is, the problem it solves, what it costs, and where it shows in the dashboard and
in the chaos lab.

The /learn page lists every topic; each pattern page opens with the "What you are seeing"
explanation of its own topic. Views are (label, endpoint, query arguments); scenarios are
names from :data:`app.scenarios.SCENARIOS`; a drawing names a partial under
``templates/learn/drawings/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class View:
    """A page of the dashboard that shows a topic at work."""

    label: str
    endpoint: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Topic:
    """One pattern or idea: the pattern, its problem, its trade-off, and where to see it."""

    key: str
    title: str
    what: str
    problem: str
    tradeoff: str
    look: str
    views: tuple[View, ...]
    scenarios: tuple[str, ...] = ()
    drawing: str = ""


TOPICS: dict[str, Topic] = {
    t.key: t
    for t in (
        Topic(
            "microservices",
            "Monolith or microservices",
            "A monolith is one program that does everything; microservices split the work into small "
            "programs, each owning one part of the business (users, orders, payment...) and talking to the "
            "others over the network.",
            "Teams can change, deploy and scale their part alone, and one part's failure need not take the "
            "whole system down.",
            "Every call that used to be a function call is now a network call: slower, able to fail or hang, "
            "and hard to follow without tracing. Running many programs is more work than running one.",
            "Each box in the service graph is one such program; each arrow is calls it made to another.",
            (View("Service graph", "services.index"),),
            ("happy-order",),
            "microservices",
        ),
        Topic(
            "api-gateway",
            "API gateway",
            "One entry point in front of all services: clients call the gateway, which checks who they are, "
            "limits how often they may call, and routes each request to the service that handles it (or asks "
            "several and combines their answers).",
            "Clients need not know where each service lives or how it speaks, and concerns such as "
            "authentication and rate limiting are done once, in one place.",
            "Every request makes one more hop, and the gateway must be kept fast and available: when it is "
            "down, everything is.",
            "Requests over the gateway's limit are answered 429 and counted as throttled, not as errors.",
            (
                View("Service graph (click the gateway)", "services.index"),
                View("Gateway traces", "traces.search", {"service": "gateway"}),
            ),
            ("rate-limit-storm",),
            "gateway",
        ),
        Topic(
            "service-discovery",
            "Service discovery",
            "Services register their instances (address, health) with a registry and renew the registration "
            "with heartbeats; a caller asks the registry for the healthy instances of a service and spreads "
            "its calls over them.",
            "Instances come and go (restarts, scaling, crashes) without anyone editing addresses, and a call "
            "that finds one instance down moves on to the next (a fail-over).",
            "The registry is one more part to run, and what it says is always a little late: an instance can "
            "die between two heartbeats, so callers must still cope with a refused connection.",
            "Compare the instances the registry lists with the traffic each one really served.",
            (View("Registry", "registry.index"), View("Overview (fail-overs)", "overview.index")),
            ("inventory-instance-down",),
            "discovery",
        ),
        Topic(
            "circuit-breaker",
            "Circuit breaker",
            "A guard around calls to another service that counts failures: after too many it opens and "
            "refuses calls at once; after a pause it lets one trial call through (half-open) and closes again "
            "if that one succeeds.",
            "A slow or failing service no longer holds every caller's threads until its timeout: calls fail "
            "fast, the failure does not climb up the chain, and the sick service gets room to recover.",
            "While it is open, calls fail that might have succeeded, and the threshold and pause need tuning: "
            "too eager and it trips on noise, too lax and it protects nothing.",
            "Open breakers show red on their timeline; each tick is a state change in a trace you can open.",
            (View("Breakers", "breakers.index"), View("Service graph (breaker badges)", "services.index")),
            ("inventory-slow", "no-breaker-cascade"),
            "breaker",
        ),
        Topic(
            "saga",
            "Saga",
            "A business transaction spread over several services, run as a sequence of local steps; when a "
            "step fails, the steps already done are undone by compensating actions, newest first.",
            "Each service keeps its own database, so there is no transaction across them; a saga keeps the "
            "whole consistent in the end without locking anything across services.",
            "Between the steps the system is visibly half done, compensations must be written (and must not "
            "fail), and some steps cannot be undone at all.",
            "A compensated saga shows its undo steps in reverse order after the failure point.",
            (View("Sagas", "sagas.index"),),
            ("payment-declined", "happy-order"),
            "saga",
        ),
        Topic(
            "sync-async",
            "Synchronous or asynchronous",
            "A synchronous call waits for its answer (HTTP request and response); an asynchronous message is "
            "put on a queue or bus and handled later by whoever consumes it.",
            "Asynchronous messages keep working while the consumer is down (they wait and are delivered "
            "later) and let one event reach many consumers without the sender waiting.",
            "The sender does not know when, or whether, the work is done; messages can arrive twice or late, "
            "so consumers must be idempotent, and one request's work is spread over several traces.",
            "Solid arrows in the service graph are synchronous calls; dashed ones are messages.",
            (
                View("Service graph", "services.index"),
                View("Consumer traces", "traces.search", {"service": "notifications"}),
            ),
            ("notifications-down",),
            "sync-async",
        ),
        Topic(
            "protocols",
            "REST, gRPC or events",
            "Three ways for services to talk: REST (HTTP and JSON, readable and everywhere), gRPC (typed "
            "messages over HTTP/2, compact and fast, with a contract both sides compile), and events "
            "(published facts that others react to).",
            "Each fits a need: REST for public and simple APIs, gRPC for fast internal calls, events for "
            "telling others what happened without depending on them.",
            "REST contracts are loose, gRPC needs generated code and is harder to read on the wire, and "
            "events move the coupling into the message format.",
            "The gateway answers GET /api/users/{id} over REST and asks users over gRPC (spans with "
            "rpc.system=grpc); orders publish events (producer and consumer spans). An order's trace holds "
            "all three: the gateway checks the customer over gRPC, calls orders over REST, and orders "
            "publishes OrderPlaced, whose consumers link back to it.",
            (
                View(
                    "Orders (REST, gRPC and events in one trace)",
                    "traces.search",
                    {"service": "gateway", "operation": "POST /api/orders"},
                ),
                View(
                    "User look-ups (REST to gRPC)",
                    "traces.search",
                    {"service": "gateway", "operation": "GET /api/users/<int:user_id>"},
                ),
                View("gRPC calls", "traces.search", {"tags": "rpc.system=grpc"}),
                View("Events", "traces.search", {"service": "notifications"}),
            ),
            ("happy-order",),
        ),
        Topic(
            "database-per-service",
            "Database per service",
            "Each service owns its data and no other service reads its tables; others ask it through its API.",
            "A service can change its schema, or its kind of database, without breaking anyone.",
            "No joins and no transactions across services: data others need must be asked for or copied, "
            "which is what sagas and API composition are for.",
            "Database calls show as rounded, dashed nodes in the service graph, one per service.",
            (View("Service graph", "services.index"),),
            ("happy-order",),
        ),
        Topic(
            "api-composition",
            "API composition",
            "One request asks several services and combines their answers, as the gateway's order details "
            "do: the order first, then its user and its products in parallel.",
            "Answers a question whose data is spread over several services' databases, without a shared "
            "database.",
            "The slowest service sets the response time, and the composer must decide what to answer when one "
            "of them fails.",
            "In the trace the parallel calls overlap in time; a part that could not be had is named in "
            "composition.missing, and the answer is still given (degraded).",
            (
                View(
                    "Order details traces",
                    "traces.search",
                    {"service": "gateway", "operation": "GET /api/order-details/<order_id>"},
                ),
            ),
            ("happy-order",),
        ),
        Topic(
            "cqrs",
            "CQRS",
            "Command and query responsibility segregation: changes go to one model (the commands), reads come "
            "from another model shaped for the questions asked (the read model), kept up to date from the "
            "changes.",
            "Reads and writes can each be shaped and scaled for their own needs.",
            "Two models to keep in step, and the read model lags the writes a little.",
            "Orders answer reads from their read model; rebuilding it is its own traced operation.",
            (View("Orders traces", "traces.search", {"service": "orders"}),),
            ("happy-order",),
        ),
        Topic(
            "event-sourcing",
            "Event sourcing",
            "Instead of storing the current state, store every change as an event; the state is what you get "
            "by replaying them.",
            "A full history for free (audit, debugging, rebuilding read models), and changes are appends.",
            "Replaying gets slower as history grows, old events must stay readable forever, and concurrent "
            "writers need version checks.",
            "Orders keep their orders as an event log; the order's events are under /orders/{id}/events.",
            (View("Orders traces", "traces.search", {"service": "orders"}),),
            ("happy-order",),
        ),
        Topic(
            "tracing",
            "Distributed tracing",
            "Each request carries a trace id from service to service; every piece of work it causes is a span "
            "with a start, an end, its parent and attributes, and together the spans form the request's tree.",
            "Shows where one request went, where its time was spent and where it failed, across every "
            "service it touched: what logs of separate services cannot tell.",
            "Every service must propagate the context and export spans, which costs a little time and "
            "storage; busy systems keep only a sample.",
            "Open a trace to see its waterfall: the critical path, the errors and each span's attributes.",
            (View("Traces", "traces.search"), View("Overview", "overview.index")),
            ("happy-order", "payment-declined"),
        ),
        Topic(
            "challenges",
            "The challenges",
            "What microservices make hard: calls that fail or hang, latency that adds up along a chain, data "
            "that is consistent only in the end, failures that cascade, and work that is hard to follow.",
            "Each pattern above answers one of them; seeing them fail on purpose is the quickest way to "
            "understand why they exist.",
            "Every answer adds parts to run and tune: breakers, registries, sagas and tracing are all code "
            "and operations a monolith would not need.",
            "The chaos lab breaks the demo on purpose and judges, from the traces, whether each pattern held.",
            (View("Chaos lab", "chaos.index"), View("Experiments", "chaos.experiments")),
            ("no-breaker-cascade", "notifications-down", "inventory-slow"),
        ),
    )
}

PAGE_TOPICS = {
    "services": "microservices",
    "breakers": "circuit-breaker",
    "sagas": "saga",
    "registry": "service-discovery",
    "gateway": "api-gateway",
}
"""The topic whose explanation opens each pattern page (and the gateway's panel)."""
