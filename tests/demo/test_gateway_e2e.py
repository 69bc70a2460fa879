"""The gateway on the real demo: JWT logins and refusals, the identity passed on, REST
translated to gRPC, and a composition that degrades instead of failing."""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from demo_services.launcher import Demo
from demo_services.protocol import DEMO_PASSWORD, LOGIN_PATH, log_in
from tests.demo.helpers import TEST_ENV, Jaeger, describe, is_true, log_events, parent_id, service_of, tag
from tests.helpers import group_members, wait_until

pytestmark = [pytest.mark.demo, pytest.mark.timeout(240)]
AUDIENCE = "spyglass-demo-gateway"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Start Spyglass and every demo service once for the module; stop them all after."""
    with Demo(data_dir=tmp_path_factory.mktemp("gateway"), env=TEST_ENV, out=io.StringIO()) as running:
        yield running
        groups = list(running.pids().values())
    assert {group: group_members(group) for group in groups} == dict.fromkeys(groups, [])


@pytest.fixture(scope="module")
def jaeger(demo: Demo) -> Jaeger:
    """Read traces from the demo's Spyglass."""
    return Jaeger(demo.ui_url)


def token(key: str, **claims: Any) -> str:
    """A token for user 3 signed with ``key``, valid for a minute unless ``claims`` say otherwise."""
    now = int(time.time())
    body = {"sub": "3", "aud": AUDIENCE, "iat": now, "exp": now + 60, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="HS256")


def unsigned() -> str:
    """A valid-looking token for user 1 with no signature at all (``alg: none``)."""
    now = int(time.time())
    return jwt.encode({"sub": "1", "aud": AUDIENCE, "iat": now, "exp": now + 60}, None, algorithm="none")


def status_code(span: dict[str, Any]) -> Any:
    """The HTTP status code of a span, under the stable or the older attribute name."""
    value = tag(span, "http.response.status_code")
    return value if value is not None else tag(span, "http.status_code")


def get_products(demo: Demo, authorization: str | None) -> requests.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return requests.get(f"{demo.gateway_url}/api/products", headers=headers, timeout=10)


def test_login_issues_a_signed_token_for_the_user(demo: Demo) -> None:
    before = int(time.time())
    answer = requests.post(
        f"{demo.gateway_url}{LOGIN_PATH}", json={"username": "grace", "password": DEMO_PASSWORD}, timeout=10
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], demo.token_key, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"] == "3"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 900
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "grace", "password": "wrong"},
        {"username": "nobody", "password": DEMO_PASSWORD},
    ],
)
def test_login_with_wrong_credentials_is_refused(demo: Demo, body: dict[str, str]) -> None:
    answer = requests.post(f"{demo.gateway_url}{LOGIN_PATH}", json=body, timeout=10)

    assert answer.status_code == 401
    assert answer.json() == {"error": "wrong username or password"}


def test_login_without_credentials_is_a_400(demo: Demo) -> None:
    answer = requests.post(f"{demo.gateway_url}{LOGIN_PATH}", data="not json", timeout=10)

    assert answer.status_code == 400
    assert "username and password" in answer.json()["error"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda key: None, "missing"),
        (lambda key: "Basic YWRhOnNweWdsYXNz", "missing"),
        (lambda key: f"Bearer {token('another key of at least thirty-two bytes')}", "bad signature"),
        (lambda key: f"Bearer {unsigned()}", "bad signature"),
        (lambda key: f"Bearer {token(key, iat=int(time.time()) - 120, exp=int(time.time()) - 60)}", "expired"),
        (lambda key: f"Bearer {token(key, iat=int(time.time()) + 120, exp=int(time.time()) + 600)}", "not yet valid"),
        (lambda key: f"Bearer {token(key, aud='someone-else')}", "wrong audience"),
        (lambda key: f"Bearer {token(key, aud=None)}", "wrong audience"),
        (lambda key: f"Bearer {token(key, sub=None)}", "malformed"),
        (lambda key: "Bearer not.a.token", "malformed"),
    ],
    ids=[
        "no header",
        "not bearer",
        "forged",
        "alg none",
        "expired",
        "issued later",
        "other audience",
        "no audience",
        "no subject",
        "garbage",
    ],
)
def test_a_token_that_does_not_verify_gets_401_with_the_reason(demo: Demo, make: Any, reason: str) -> None:
    answer = get_products(demo, make(demo.token_key))

    assert answer.status_code == 401
    assert answer.json()["reason"] == reason
    assert answer.json()["error"]
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="spyglass-demo"')
    assert ('error="invalid_token"' in challenge) == (reason != "missing")


def test_a_forged_token_never_reaches_a_service(demo: Demo, jaeger: Jaeger) -> None:
    # Baggage the services copy onto every span marks this request's trace.
    probe = secrets.token_hex(8)
    forged = token("another key of at least thirty-two bytes", sub="4")
    answer = requests.get(
        f"{demo.gateway_url}/api/products",
        headers={"Authorization": f"Bearer {forged}", "baggage": f"chaos.experiment_id={probe}"},
        timeout=10,
    )
    assert answer.status_code == 401

    def stored() -> list[dict[str, Any]] | None:
        return jaeger.find("gateway", tags={"chaos.experiment_id": probe}) or None

    [trace] = wait_until(stored, interval=0.2, message=describe(demo, "the refused request's trace"))
    assert [service_of(trace, s) for s in trace["spans"]] == ["gateway"]
    [span] = trace["spans"]
    assert status_code(span) == 401
    assert tag(span, "enduser.id") is None


def test_a_valid_token_reaches_the_service_with_the_callers_identity(demo: Demo, jaeger: Jaeger) -> None:
    access = log_in(demo.gateway_url, "edsger")
    response = get_products(demo, access.header)
    assert response.status_code == 200, response.text

    def stored() -> dict[str, Any] | None:
        for candidate in jaeger.find("inventory", tags={"enduser.id": "4"}):
            full = jaeger.trace(candidate["traceID"])
            if full is not None and {"gateway", "inventory"} <= {service_of(full, s) for s in full["spans"]}:
                return full
        return None

    trace = wait_until(stored, interval=0.2, message=describe(demo, "a trace with enduser.id=4 in inventory"))
    servers = {service_of(trace, s): s for s in trace["spans"] if tag(s, "span.kind") == "server"}
    assert tag(servers["gateway"], "enduser.id") == "4"
    assert tag(servers["inventory"], "enduser.id") == "4"
    assert parent_id(servers["gateway"]) is None


def test_only_users_and_the_gateway_hold_the_token_key_and_no_output_shows_it(demo: Demo) -> None:
    holders = {
        name
        for name, pid in demo.pids().items()
        if demo.token_key.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    }

    assert holders == {"users", "gateway"}
    assert demo.token_key not in demo.logs(lines=100_000)


def rooted(trace: dict[str, Any]) -> bool:
    """Whether the root span (which ends last) has arrived."""
    return any(parent_id(s) is None for s in trace["spans"])


def traced_get(demo: Demo, path: str, authorization: str) -> tuple[requests.Response, str]:
    """GET ``path`` through the gateway with a baggage probe; return the answer and the probe."""
    probe = secrets.token_hex(8)
    answer = requests.get(
        f"{demo.gateway_url}{path}",
        headers={"Authorization": authorization, "baggage": f"chaos.experiment_id={probe}"},
        timeout=10,
    )
    return answer, probe


def probed_trace(demo: Demo, jaeger: Jaeger, probe: str, ready: Any) -> dict[str, Any]:
    """The stored trace marked with ``probe``, once ``ready(trace)`` holds."""

    def stored() -> dict[str, Any] | None:
        for candidate in jaeger.find("gateway", tags={"chaos.experiment_id": probe}):
            full = jaeger.trace(candidate["traceID"])
            if full is not None and ready(full):
                return full
        return None

    return wait_until(stored, interval=0.2, message=describe(demo, f"the trace of probe {probe}"))


def test_users_registers_its_grpc_address_beside_its_http_url(demo: Demo) -> None:
    [users] = requests.get(f"{demo.registry_url}/services/users", timeout=5).json()["instances"]

    assert users["url"] == demo.url("users")
    assert users["grpc_url"] == f"127.0.0.1:{demo.grpc_ports['users']}"
    assert users["healthy"] is True
    assert requests.get(f"{demo.url('users')}/health", timeout=5).json()["status"] == "ok"


def test_a_rest_call_for_a_user_is_translated_to_grpc_under_the_gateways_http_span(demo: Demo, jaeger: Jaeger) -> None:
    grace = demo.log_in("grace").header
    answer, probe = traced_get(demo, "/api/users/2", grace)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": 2, "name": "Alan Turing", "email": "alan@example.com"}
    missing = requests.get(f"{demo.gateway_url}/api/users/99", headers={"Authorization": grace}, timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "no user 99"}

    def complete(trace: dict[str, Any]) -> bool:
        return rooted(trace) and {"gateway", "users"} <= {service_of(trace, s) for s in trace["spans"]}

    trace = probed_trace(demo, jaeger, probe, complete)
    by_id = {s["spanID"]: s for s in trace["spans"]}
    [http] = [s for s in trace["spans"] if parent_id(s) is None]
    assert service_of(trace, http) == "gateway" and tag(http, "span.kind") == "server"
    grpc_spans = [s for s in trace["spans"] if tag(s, "rpc.system") == "grpc"]
    [client] = [s for s in grpc_spans if tag(s, "span.kind") == "client"]
    [server] = [s for s in grpc_spans if tag(s, "span.kind") == "server"]
    assert service_of(trace, client) == "gateway" and service_of(trace, server) == "users"
    assert by_id[parent_id(client)] is http
    assert parent_id(server) == client["spanID"]
    for span in (client, server):
        assert tag(span, "rpc.service") == "spyglass.demo.users.v1.UserDirectory"
        assert tag(span, "rpc.method") == "GetUser"
        assert tag(span, "rpc.grpc.status_code") == 0
    assert tag(client, "peer.service") == "users"
    assert tag(client, "discovery.instance.id") == "users"
    assert tag(client, "server.port") == demo.grpc_ports["users"]
    assert tag(client, "circuit_breaker.name") == "gateway->users"
    assert tag(client, "circuit_breaker.state") == "closed"
    assert tag(server, "enduser.id") == "3"


def test_a_stopped_users_instance_is_a_failover_event_on_the_grpc_call_span(demo: Demo, jaeger: Jaeger) -> None:
    alan = demo.log_in("alan").header
    # A call just before keeps users in the gateway's discovery cache (0.5 s), so the next
    # call still tries it after it stops answering.
    assert traced_get(demo, "/api/users/1", alan)[0].status_code == 200
    demo.control("users", stopped=True)
    try:
        answer, probe = traced_get(demo, "/api/users/1", alan)
    finally:
        demo.control("users", stopped=False)

    assert answer.status_code == 503, answer.text
    assert "users unavailable" in answer.json()["error"]
    trace = probed_trace(demo, jaeger, probe, lambda t: rooted(t) and any(tag(s, "rpc.system") for s in t["spans"]))
    [client] = [s for s in trace["spans"] if tag(s, "rpc.system") == "grpc" and tag(s, "span.kind") == "client"]
    [failover] = log_events(client, "discovery.failover")
    assert failover["discovery.instance.id"] == "users"
    assert "users is stopped" in failover["discovery.failover.reason"]
    assert is_true(tag(client, "error"))
    # The stopped instance turned the call away itself: its span says UNAVAILABLE (14).
    [refused] = [s for s in trace["spans"] if service_of(trace, s) == "users"]
    assert parent_id(refused) == client["spanID"]
    assert tag(refused, "rpc.grpc.status_code") == 14


def test_failing_grpc_calls_open_the_gateways_breaker_for_users(demo: Demo, jaeger: Jaeger) -> None:
    alan = demo.log_in("alan").header
    demo.control("users", error_rate=1.0)
    try:
        failing = [traced_get(demo, "/api/users/1", alan)[0] for _ in range(3)]
        refused, probe = traced_get(demo, "/api/users/1", alan)
    finally:
        demo.control("users", error_rate=0.0)

    assert [r.status_code for r in failing] == [502, 502, 502], [r.text for r in failing]
    assert "INTERNAL" in failing[0].json()["error"]
    assert refused.status_code == 503 and "circuit breaker" in refused.json()["error"]
    trace = probed_trace(demo, jaeger, probe, lambda t: any(tag(s, "rpc.system") for s in t["spans"]))
    [client] = [s for s in trace["spans"] if tag(s, "rpc.system") == "grpc"]
    assert tag(client, "circuit_breaker.rejected") is True
    assert tag(client, "circuit_breaker.state") == "open"
    assert "users" not in {service_of(trace, s) for s in trace["spans"]}
    # After the reset timeout a trial call closes the breaker again.
    wait_until(
        lambda: requests.get(f"{demo.gateway_url}/api/users/1", headers={"Authorization": alan}, timeout=10).ok,
        interval=0.3,
        message=describe(demo, "a call to users after the breaker's reset timeout"),
    )


def place_order(demo: Demo, authorization: str) -> str:
    answer = requests.post(
        f"{demo.gateway_url}/api/orders",
        json={"user_id": 5, "items": [{"product_id": 2, "quantity": 1}, {"product_id": 4, "quantity": 2}]},
        headers={"Authorization": authorization},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["order_id"]


def composition_span(trace: dict[str, Any]) -> dict[str, Any]:
    """The gateway's server span of an order-details request."""
    [span] = [s for s in trace["spans"] if parent_id(s) is None]
    assert service_of(trace, span) == "gateway"
    return span


def test_a_whole_composition_names_nothing_missing(demo: Demo, jaeger: Jaeger) -> None:
    barbara = demo.log_in("barbara").header
    order_id = place_order(demo, barbara)

    answer, probe = traced_get(demo, f"/api/order-details/{order_id}", barbara)

    assert answer.status_code == 200, answer.text
    details = answer.json()
    assert details["missing"] == []
    assert details["order"]["order_id"] == order_id
    assert details["user"] == {"id": 5, "name": "Barbara Liskov", "email": "barbara@example.com"}
    assert {p["id"] for p in details["products"]} == {2, 4}
    trace = probed_trace(demo, jaeger, probe, lambda t: rooted(t) and any(tag(s, "rpc.system") for s in t["spans"]))
    span = composition_span(trace)
    assert tag(span, "composition.degraded") is False
    assert tag(span, "composition.missing") is None
    assert log_events(span, "composition.part_missing") == []


def test_a_composition_with_users_stopped_answers_200_and_names_the_missing_user(demo: Demo, jaeger: Jaeger) -> None:
    barbara = demo.log_in("barbara").header
    order_id = place_order(demo, barbara)
    demo.stop_instance("users")
    try:
        answer, probe = traced_get(demo, f"/api/order-details/{order_id}", barbara)
    finally:
        demo.start_instance("users")

    assert answer.status_code == 200, answer.text
    details = answer.json()
    assert details["order"]["order_id"] == order_id
    assert {p["id"] for p in details["products"]} == {2, 4}
    assert details["user"] is None
    [missing] = details["missing"]
    assert (missing["part"], missing["service"]) == ("user", "users")
    assert "users unavailable" in missing["reason"]
    trace = probed_trace(
        demo, jaeger, probe, lambda t: rooted(t) and "inventory" in {service_of(t, s) for s in t["spans"]}
    )
    span = composition_span(trace)
    assert tag(span, "composition.degraded") is True
    assert tag(span, "composition.missing") == '["users"]'
    [event] = log_events(span, "composition.part_missing")
    assert (event["composition.part"], event["peer.service"]) == ("user", "users")
    assert event["composition.reason"] == missing["reason"]
    assert "users" not in {service_of(trace, s) for s in trace["spans"]}
    degraded = jaeger.find("gateway", tags={"composition.degraded": "true"}, limit=100)
    assert trace["traceID"] in {t["traceID"] for t in degraded}


def test_a_composition_with_inventory_out_of_service_names_the_missing_products(demo: Demo) -> None:
    barbara = demo.log_in("barbara").header
    order_id = place_order(demo, barbara)
    for instance in ("inventory-1", "inventory-2"):
        demo.control(instance, stopped=True)
    try:
        answer, _probe = traced_get(demo, f"/api/order-details/{order_id}", barbara)
    finally:
        for instance in ("inventory-1", "inventory-2"):
            demo.control(instance, stopped=False)

    assert answer.status_code == 200, answer.text
    details = answer.json()
    assert details["user"]["id"] == 5 and details["products"] is None
    assert [(m["part"], m["service"]) for m in details["missing"]] == [("products", "inventory")]
