"""API gateway: the demo's single entry point.

Authentication with signed JWTs that users issues (``POST /api/login`` is routed there
without a token; every other ``/api/`` request needs a valid one, else 401 with a JSON
``reason`` and a ``WWW-Authenticate: Bearer`` challenge); the caller's identity goes on
to services in ``X-User-Id`` and onto the gateway's span as ``enduser.id``. Per-user
rate limits through flask-limiter (429 with Retry-After). Routing of
``/api/<resource>/...`` to instances found through the registry, with protocol
translation for one route: ``GET /api/users/<id>`` becomes users' gRPC ``GetUser``. ``POST /api/orders`` checks
the order's customer over that ``GetUser`` first (422 for an unknown one; when users cannot
answer the check is skipped, recorded on the span, and the order goes on).
API composition at ``/api/order-details/<id>`` fetches the order and then its user (over
gRPC) and products in parallel; when one of those cannot be had the answer is still 200,
with that part null and named in ``missing`` (a degraded response), and the request's
span says so (``composition.degraded``, ``composition.missing`` and a
``composition.part_missing`` event per missing part). A GET routed over REST that cannot be answered is served
from the last good copy (the breaker's fallback).
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Response, g, jsonify, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many
from opentelemetry import trace
from werkzeug.routing import Rule

from demo_services.client import PEER_SERVICE, ServiceClient, UpstreamError
from demo_services.protocol import ENDUSER_ID, LOGIN_PATH, USER_ID_HEADER
from demo_services.service import (
    Service,
    ServiceSettings,
    error_response,
    lookup_instances,
    main_for,
    make_service,
)
from demo_services.tokens import MISSING, TokenRefused, signing_key, verify
from demo_services.user_directory import UserDirectoryClient

RATE_LIMIT = "rate_limit.limit"
RATE_LIMIT_WINDOW = "rate_limit.window_ms"
ROUTES = {"users": "users", "orders": "orders", "products": "inventory", "payments": "payment"}
DEPENDS_ON = ["users", "orders", "inventory", "payment"]
COMPOSITION_DEGRADED = "composition.degraded"
COMPOSITION_MISSING = "composition.missing"
PART_MISSING_EVENT = "composition.part_missing"
COMPOSITION_PART = "composition.part"
COMPOSITION_REASON = "composition.reason"
CUSTOMER_CHECK = "customer_check.outcome"
CHECK_KNOWN, CHECK_UNKNOWN, CHECK_SKIPPED = "known", "unknown", "skipped"
CUSTOMER_CHECK_SKIPPED_EVENT = "customer_check.skipped"
CUSTOMER_CHECK_REASON = "customer_check.reason"
INT64_MAX = 2**63 - 1
"""The largest id GetUser's int64 can carry; no user has a larger one."""
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def create_service(settings: ServiceSettings) -> Service:
    """Build the gateway."""
    token_key = signing_key(settings.jwt_key, "gateway")
    service = make_service("gateway", settings, depends_on=DEPENDS_ON, database=False, trust_user_header=False)
    app = service.app
    assert service.discovery is not None
    client = ServiceClient(
        "gateway",
        service.discovery,
        timeout_s=settings.call_timeout_s * 3,
        failure_threshold=settings.breaker_failures,
        reset_after_s=settings.breaker_reset_s,
        bypass=lambda: service.chaos.bypass_breakers,
    )
    directory = UserDirectoryClient(
        lambda name: lookup_instances(settings.registry_url, name),
        client.breaker("users"),
        timeout_s=settings.call_timeout_s * 3,
        cache_ttl_s=settings.discovery_cache_s,
        bypass=lambda: service.chaos.bypass_breakers,
    )
    cache: dict[str, tuple[int, bytes]] = {}
    cache_lock = threading.Lock()
    pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="compose")
    limiter = Limiter(
        key_func=lambda: g.get("user_id", request.remote_addr or "anonymous"),
        default_limits=[settings.rate_limit],
        headers_enabled=True,
        storage_uri="memory://",
    )

    limit = parse_many(settings.rate_limit)[0]
    limit_attributes = {RATE_LIMIT: limit.amount, RATE_LIMIT_WINDOW: limit.get_expiry() * 1000}

    @app.before_request
    def _describe_request() -> None:
        # Runs first, so that a request refused early (401, 429) is described too.
        if request.path.startswith("/api/"):
            span = trace.get_current_span()
            span.update_name(span_name(request.method, request.url_rule, request.view_args))
            span.set_attributes(limit_attributes)

    @app.before_request
    def _authenticate() -> Response | None:
        if not request.path.startswith("/api/") or request.path == LOGIN_PATH:
            return None
        try:
            identity = verify(request.headers.get("Authorization"), token_key)
        except TokenRefused as refused:
            return _unauthorized(refused)
        g.user_id = identity.user_id
        trace.get_current_span().set_attribute(ENDUSER_ID, identity.user_id)
        return None

    # The limiter's hook goes after authentication, so the limit is per user.
    limiter.init_app(app)
    limiter.exempt(app.view_functions["health"])
    limiter.exempt(app.view_functions["control"])

    @app.errorhandler(RateLimitExceeded)
    def _too_many(err: RateLimitExceeded) -> Response:
        response = error_response(429, f"rate limit exceeded: {err.description}")
        return response

    @app.post(LOGIN_PATH)
    def login() -> Response:
        try:
            upstream = client.request("users", "POST", "/login", json=request.get_json(silent=True))
        except UpstreamError as err:
            return error_response(err.status, f"users unavailable: {err}")
        return _relay(upstream)

    @app.get("/api/users/<int:user_id>")
    def get_user(user_id: int) -> Response:
        # Protocol translation: REST in, users' gRPC GetUser out, the same JSON back.
        try:
            user = directory.get_user(user_id, g.user_id)
        except UpstreamError as err:
            return error_response(err.status, str(err))
        if user is None:
            return error_response(404, f"no user {user_id}")
        return jsonify(user)

    def forward(target: str, path: str) -> Response:
        """Send the request on to ``target`` at ``path``; a failed GET is answered from the
        last good copy when there is one."""
        try:
            upstream = client.request(
                target,
                request.method,
                path,
                json=request.get_json(silent=True) if request.data else None,
                params=dict(request.args) or None,
                headers=_identity(),
            )
        except UpstreamError as err:
            if request.method == "GET":
                with cache_lock:
                    cached = cache.get(request.full_path)
                if cached is not None:
                    response = Response(cached[1], status=cached[0], mimetype="application/json")
                    response.headers["X-Spyglass-Fallback"] = "cache"
                    return response
            return error_response(err.status, f"{target} unavailable: {err}")
        if request.method == "GET" and upstream.status_code == 200:
            with cache_lock:
                cache[request.full_path] = (200, upstream.content)
        return _relay(upstream)

    @app.post("/api/orders")
    def place_order() -> Response:
        # The order's customer is looked up over users' gRPC GetUser before orders sees it,
        # so an order's trace holds REST, gRPC and (OrderPlaced) events side by side.
        refused = _check_customer(directory, request.get_json(silent=True))
        return refused if refused is not None else forward("orders", "/orders")

    @app.route("/api/<resource>", methods=["GET", "POST"], defaults={"rest": ""})
    @app.route("/api/<resource>/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def route(resource: str, rest: str) -> Response:
        target = ROUTES.get(resource)
        if target is None:
            return error_response(404, f"no route for /api/{resource}")
        return forward(target, f"/{resource}" + (f"/{rest}" if rest else ""))

    @app.get("/api/order-details/<order_id>")
    def order_details(order_id: str) -> Response:
        identity = _identity()
        try:
            order = _get_json(client, "orders", f"/orders/{order_id}", identity)
        except UpstreamError as err:
            # Without the order there is nothing to compose around.
            return error_response(err.status, str(err))
        if order is None:
            return error_response(404, f"no order {order_id}")
        ids = ",".join(str(i["product_id"]) for i in order["items"]) or "0"
        in_context = contextvars.copy_context
        parts = {
            "user": ("users", pool.submit(in_context().run, directory.get_user, order["user_id"], g.user_id)),
            "products": (
                "inventory",
                pool.submit(in_context().run, _get_json, client, "inventory", f"/products?ids={ids}", identity),
            ),
        }
        details: dict[str, Any] = {"order": order}
        missing: list[dict[str, str]] = []
        for part, (callee, future) in parts.items():
            try:
                details[part] = future.result()
            except UpstreamError as err:
                details[part] = None
                missing.append({"part": part, "service": callee, "reason": str(err)})
        if details["products"] is not None:
            details["products"] = details["products"]["products"]
        details["missing"] = missing
        _record_composition(trace.get_current_span(), missing)
        return jsonify(details)

    return service


def _check_customer(directory: UserDirectoryClient, body: Any) -> Response | None:
    """Check that the customer an order is for (its ``user_id``) is known to users; a 422
    when it is not, None to go on.

    A body without a readable ``user_id`` goes on unchecked: orders owns the order's
    validation and answers 400. When users cannot answer (down, failing, breaker open) the
    check fails open: the order goes on, and the span says the check was skipped and why.
    Users is no part of placing an order (the saga, payment and its card are), so an outage
    of the directory must not stop orders; the cost is that an unknown customer may slip
    through while it lasts, which orders' record of the order shows.
    """
    customer = _customer_id(body)
    if customer is None:
        return None
    span = trace.get_current_span()
    try:
        known = abs(customer) <= INT64_MAX and directory.get_user(customer, g.user_id) is not None
    except UpstreamError as err:
        span.set_attribute(CUSTOMER_CHECK, CHECK_SKIPPED)
        span.add_event(CUSTOMER_CHECK_SKIPPED_EVENT, {PEER_SERVICE: "users", CUSTOMER_CHECK_REASON: str(err)})
        return None
    span.set_attribute(CUSTOMER_CHECK, CHECK_KNOWN if known else CHECK_UNKNOWN)
    if not known:
        return error_response(422, f"no user {customer}: an order needs a known customer")
    return None


def _customer_id(body: Any) -> int | None:
    """The order's ``user_id`` read as orders reads it, or None when it cannot be."""
    if not isinstance(body, dict) or body.get("user_id") is None:
        return None
    try:
        return int(body["user_id"])
    except (TypeError, ValueError, OverflowError):
        return None


def _unauthorized(refused: TokenRefused) -> Response:
    """401 with the reason in JSON and an RFC 6750 challenge."""
    response = jsonify(error=str(refused), reason=refused.reason)
    response.status_code = 401
    challenge = 'Bearer realm="spyglass-demo"'
    if refused.reason != MISSING:
        challenge += f', error="invalid_token", error_description="{refused.reason}"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def _identity() -> dict[str, str]:
    """The headers that pass the caller's identity on."""
    return {USER_ID_HEADER: g.user_id}


def _relay(upstream: Any) -> Response:
    """The upstream answer as the gateway's, without hop-by-hop headers."""
    response = Response(upstream.content, status=upstream.status_code)
    for key, value in upstream.headers.items():
        if key.lower() not in _HOP_HEADERS:
            response.headers[key] = value
    return response


def span_name(method: str, rule: Rule | None, args: dict[str, Any] | None) -> str:
    """The server span's name: the route with the resource asked for filled in
    (``POST /api/orders``, not ``POST /api/<resource>``). Only the resources the gateway
    routes are filled in, so names stay few whatever paths clients send."""
    if rule is None:
        return method
    resource = (args or {}).get("resource")
    if resource in ROUTES:
        return f"{method} {rule.rule.replace('<resource>', resource)}"
    return f"{method} {rule.rule}"


def _record_composition(span: trace.Span, missing: list[dict[str, str]]) -> None:
    """Say on the composing request's span whether its answer is whole (docs/conventions.md)."""
    span.set_attribute(COMPOSITION_DEGRADED, bool(missing))
    if missing:
        span.set_attribute(COMPOSITION_MISSING, [m["service"] for m in missing])
    for m in missing:
        span.add_event(
            PART_MISSING_EVENT,
            {COMPOSITION_PART: m["part"], PEER_SERVICE: m["service"], COMPOSITION_REASON: m["reason"]},
        )


def _get_json(client: ServiceClient, service: str, path: str, headers: dict[str, str]) -> Any:
    """GET ``path`` from ``service`` with ``headers``; None on 404, UpstreamError on failure."""
    response = client.request(service, "GET", path, headers=headers)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise UpstreamError(service, f"{service} answered {response.status_code}", 502)
    return response.json()


def main() -> None:
    """Run the gateway process."""
    main_for("gateway", create_service)


if __name__ == "__main__":
    main()
