"""The users service over gRPC: the ``UserDirectory`` server users runs beside its HTTP
app, and the client the gateway translates ``GET /api/users/<id>`` into.

The messages and stubs are generated from ``demo_services/proto/users.proto`` (committed;
``make protos`` regenerates them). Both ends are traced by OpenTelemetry's gRPC
instrumentation: a CLIENT span in the gateway and a SERVER span in users, each with
``rpc.system=grpc``, ``rpc.service`` and ``rpc.method``, the trace context travelling in
the call's metadata. The caller's identity travels there too (``x-user-id``).

A call goes: discovery (the instances' registered ``grpc_url``, round-robin, fail-over on
UNAVAILABLE) -> the instrumentation's CLIENT span -> the gateway's breaker for users (on
that span, so a refused call has no downstream span) -> the RPC with a deadline.
UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL and UNKNOWN count as breaker failures;
NOT_FOUND is an answer. The server applies the instance's fault switches (stopped,
hang, latency with jitter, error rate) to each call as the HTTP side does.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import client_interceptor, server_interceptor
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

from demo_services.client import INSTANCE_ID, PEER_SERVICE, SERVER_PORT, BreakerFailure, UpstreamError
from demo_services.patterns.breaker import CircuitBreaker, CircuitOpenError
from demo_services.patterns.discovery import DiscoveryClient, Instance, NoHealthyInstanceError
from demo_services.proto import users_pb2, users_pb2_grpc
from demo_services.protocol import ENDUSER_ID
from demo_services.service import HANG_LIMIT_S, MAX_USER_ID, Chaos, added_delay_s

USER_ID_METADATA = "x-user-id"
SERVER_ADDRESS = "server.address"
BREAKER_FAILURES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
)
SERVER_THREADS = 8
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
"""A restarted instance is reached again within a second (gRPC's default backoff grows to 2 min)."""


class UserDirectoryServer(users_pb2_grpc.UserDirectoryServicer):
    """``GetUser`` over gRPC, reading users through ``find_user(id)`` (None when unknown).

    The port is bound when the server is built (so the address can be registered), the
    server starts with ``start()`` and stops when the process ends.
    """

    def __init__(self, find_user: Callable[[int], dict[str, Any] | None], chaos: Chaos, name: str, port: int) -> None:
        self._find_user = find_user
        self._chaos = chaos
        self._name = name
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=SERVER_THREADS, thread_name_prefix="grpc"),
            interceptors=[server_interceptor()],
            # A port another process holds is an error here, not a port silently shared.
            options=[("grpc.so_reuseport", 0)],
        )
        users_pb2_grpc.add_UserDirectoryServicer_to_server(self, self._server)
        # Raises RuntimeError when the port is taken; port 0 picks a free one.
        bound = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.address = f"127.0.0.1:{bound}"

    def start(self) -> None:
        """Serve calls from now on."""
        self._server.start()

    def stop(self, grace_s: float = 1.0) -> None:
        """Stop serving, letting calls in progress finish for ``grace_s`` seconds."""
        self._server.stop(grace_s).wait()

    def GetUser(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC's name)
        self._inject_failures(context)
        caller = dict(context.invocation_metadata()).get(USER_ID_METADATA)
        if caller:
            trace.get_current_span().set_attribute(ENDUSER_ID, str(caller)[:MAX_USER_ID])
        row = self._find_user(request.id)
        if row is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no user {request.id}")
        return users_pb2.User(id=row["id"], name=row["name"], email=row["email"])

    def _inject_failures(self, context: grpc.ServicerContext) -> None:
        chaos = self._chaos
        if chaos.stopped:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self._name} is stopped")
        deadline = time.monotonic() + HANG_LIMIT_S
        while chaos.hang and time.monotonic() < deadline and context.is_active():
            time.sleep(0.05)
        if chaos.latency_ms or chaos.jitter_ms:
            time.sleep(added_delay_s(chaos.latency_ms, chaos.jitter_ms))
        if chaos.error_rate and random.random() < chaos.error_rate:
            context.abort(grpc.StatusCode.INTERNAL, f"injected error in {self._name}")


class InstanceUnavailable(Exception):
    """An instance answered UNAVAILABLE (not listening, or stopped): try the next one."""


class UserDirectoryClient:
    """Call users' ``UserDirectory`` through discovery and ``breaker`` (the caller's breaker
    for users, shared with its HTTP calls there; skipped while ``bypass()`` is true).

    ``lookup(service)`` returns the registered instances; those without a ``grpc_url``
    are left out. One channel is kept per instance address.
    """

    def __init__(
        self,
        lookup: Callable[[str], list[Instance]],
        breaker: CircuitBreaker,
        *,
        timeout_s: float,
        cache_ttl_s: float,
        service: str = "users",
        bypass: Callable[[], bool] = lambda: False,
    ) -> None:
        self._service = service
        self._breaker = breaker
        self._bypass = bypass
        self._timeout_s = timeout_s
        self._discovery = DiscoveryClient(
            lambda name: [i for i in lookup(name) if i.grpc_url],
            failover_errors=(InstanceUnavailable,),
            cache_ttl_s=cache_ttl_s,
        )
        self._stubs: dict[str, users_pb2_grpc.UserDirectoryStub] = {}
        self._lock = threading.Lock()

    def get_user(self, user_id: int, caller_id: str) -> dict[str, Any] | None:
        """The user with ``user_id`` as a dict, None when there is none; ``UpstreamError``
        when users cannot answer (status 503 none reachable or breaker open, 504
        deadline exceeded, 502 otherwise)."""
        request = users_pb2.GetUserRequest(id=user_id)
        metadata = ((USER_ID_METADATA, caller_id),)

        def send(instance: Instance) -> dict[str, Any] | None:
            try:
                reply = self._stub(instance).GetUser(request, timeout=self._timeout_s, metadata=metadata)
            except grpc.RpcError as err:
                code = err.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    return None
                if code == grpc.StatusCode.UNAVAILABLE:
                    raise InstanceUnavailable(f"{instance.instance_id}: {err.details()}") from err
                raise
            return {"id": reply.id, "name": reply.name, "email": reply.email}

        try:
            return self._discovery.call(self._service, send)
        except (NoHealthyInstanceError, CircuitOpenError) as err:
            raise UpstreamError(self._service, f"{self._service} unavailable: {err}", 503) from err
        except grpc.RpcError as err:
            status = 504 if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED else 502
            message = f"{self._service} answered {err.code().name}: {err.details()}"
            raise UpstreamError(self._service, message, status) from err

    def _stub(self, instance: Instance) -> users_pb2_grpc.UserDirectoryStub:
        with self._lock:
            stub = self._stubs.get(instance.grpc_url)
            if stub is None:
                channel = grpc.insecure_channel(instance.grpc_url, options=RECONNECT_OPTIONS)
                guarded = grpc.intercept_channel(channel, _BreakerGuard(self._breaker, instance, self._bypass))
                # The instrumentation's interceptor is the outer one: its CLIENT span is
                # current while the breaker decides, so the breaker's attributes land on it.
                stub = users_pb2_grpc.UserDirectoryStub(intercept_channel(guarded, client_interceptor()))
                self._stubs[instance.grpc_url] = stub
            return stub


class _CallFailed(BreakerFailure):
    """A call that ended in a breaker-failure status, carried through the breaker."""

    def __init__(self, outcome: Any) -> None:
        super().__init__(f"{outcome.code().name}: {outcome.details()}")
        self.outcome = outcome


class _BreakerGuard(grpc.UnaryUnaryClientInterceptor):
    """Run each call through ``breaker`` (unless ``bypass()``, the ``bypass_breakers``
    switch) and name the instance it goes to on the span."""

    def __init__(self, breaker: CircuitBreaker, instance: Instance, bypass: Callable[[], bool]) -> None:
        self._breaker = breaker
        self._instance = instance
        self._bypass = bypass

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        span = trace.get_current_span()
        host, _, port = self._instance.grpc_url.rpartition(":")
        span.set_attributes(
            {
                PEER_SERVICE: self._instance.service,
                INSTANCE_ID: self._instance.instance_id,
                SERVER_ADDRESS: host,
                SERVER_PORT: int(port),
            }
        )

        if self._bypass():
            return continuation(client_call_details, request)

        def attempt() -> Any:
            outcome = continuation(client_call_details, request)
            if outcome.code() in BREAKER_FAILURES:
                raise _CallFailed(outcome)
            return outcome

        try:
            return self._breaker.call(attempt)
        except _CallFailed as failed:
            return failed.outcome
