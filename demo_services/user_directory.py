"""The users service over gRPC: the ``UserDirectory`` server users runs beside its HTTP
app, and the client the gateway translates ``GET /api/users/<id>`` into.

The messages and stubs are generated from ``demo_services/proto/users.proto`` (committed;
``make protos`` regenerates them). Both ends are traced by OpenTelemetry's gRPC
instrumentation: a CLIENT span in the gateway and a SERVER span in users, each with
``rpc.system=grpc``, ``rpc.service`` and ``rpc.method``, the trace context travelling in
the call's metadata. The caller's identity travels there too (``x-user-id``).

A call goes as an HTTP call does: the instrumentation's CLIENT span -> the gateway's
breaker for users (on that span, so a refused call has no downstream span) -> discovery
(the instances' registered ``grpc_url``, round-robin, fail-over on UNAVAILABLE, recorded
on that span too) -> the RPC with a deadline.
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

from demo_services.client import PEER_SERVICE, SERVER_PORT, BreakerFailure, UpstreamError
from demo_services.patterns.breaker import CircuitBreaker, CircuitOpenError
from demo_services.patterns.discovery import INSTANCE_ID, DiscoveryClient, Instance, NoHealthyInstanceError
from demo_services.proto import users_pb2, users_pb2_grpc
from demo_services.protocol import ENDUSER_ID
from demo_services.chaos_switches import HANG_LIMIT_S, Chaos, added_delay_s
from demo_services.service import MAX_USER_ID

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

    def __init__(
        self,
        find_user: Callable[[int], dict[str, Any] | None],
        chaos: Chaos,
        name: str,
        port: int,
        host: str = "127.0.0.1",
        advertised_host: str = "127.0.0.1",
    ) -> None:
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
        bound = self._server.add_insecure_port(f"{host}:{port}")
        self.address = f"{advertised_host}:{bound}"

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

    def __init__(self, error: grpc.RpcError) -> None:
        super().__init__(f"UNAVAILABLE: {error.details()}")
        self.error = error


class UserDirectoryClient:
    """Call users' ``UserDirectory`` through discovery and ``breaker`` (the caller's breaker
    for users, shared with its HTTP calls there; skipped while ``bypass()`` is true).

    ``lookup(service)`` returns the registered instances; those without a ``grpc_url``
    are left out. The stub's channel picks an instance for each call (see
    ``_DiscoveringChannel``); one gRPC channel is kept per instance address.
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
        self._timeout_s = timeout_s
        discovery = DiscoveryClient(
            lambda name: [i for i in lookup(name) if i.grpc_url],
            failover_errors=(InstanceUnavailable,),
            cache_ttl_s=cache_ttl_s,
        )
        # The instrumentation's interceptor is the outer one: its CLIENT span is current
        # while the breaker decides and discovery chooses, so both record on it.
        channel = _DiscoveringChannel(service, discovery, breaker, bypass)
        self._stub = users_pb2_grpc.UserDirectoryStub(intercept_channel(channel, client_interceptor()))

    def get_user(self, user_id: int, caller_id: str) -> dict[str, Any] | None:
        """The user with ``user_id`` as a dict, None when there is none; ``UpstreamError``
        when users cannot answer (status 503 none reachable or breaker open, 504
        deadline exceeded, 502 otherwise)."""
        request = users_pb2.GetUserRequest(id=user_id)
        try:
            reply = self._stub.GetUser(request, timeout=self._timeout_s, metadata=((USER_ID_METADATA, caller_id),))
        except (NoHealthyInstanceError, CircuitOpenError) as err:
            raise UpstreamError(self._service, f"{self._service} unavailable: {err}", 503) from err
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            status = 504 if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED else 502
            message = f"{self._service} answered {err.code().name}: {err.details()}"
            raise UpstreamError(self._service, message, status) from err
        return {"id": reply.id, "name": reply.name, "email": reply.email}


class _CallFailed(BreakerFailure):
    """A call that ended in a breaker-failure status, carried through the breaker."""

    def __init__(self, error: grpc.RpcError) -> None:
        super().__init__(f"{error.code().name}: {error.details()}")
        self.error = error


class _DiscoveringChannel(grpc.Channel):
    """A channel to a service rather than an address: each unary call goes through the
    breaker, then discovery, to the channel of the instance chosen, failing over to the
    next on UNAVAILABLE, and names that instance on the current span."""

    def __init__(
        self, service: str, discovery: DiscoveryClient, breaker: CircuitBreaker, bypass: Callable[[], bool]
    ) -> None:
        self._service = service
        self._discovery = discovery
        self._breaker = breaker
        self._bypass = bypass
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> grpc.UnaryUnaryMultiCallable:
        def invoke(request: Any, timeout: float | None, metadata: Any) -> Any:
            def attempt(instance: Instance) -> Any:
                host, _, port = instance.grpc_url.rpartition(":")
                trace.get_current_span().set_attributes(
                    {
                        PEER_SERVICE: instance.service,
                        INSTANCE_ID: instance.instance_id,
                        SERVER_ADDRESS: host,
                        SERVER_PORT: int(port),
                    }
                )
                call = self._channel(instance).unary_unary(method, request_serializer, response_deserializer)
                try:
                    return call(request, timeout=timeout, metadata=metadata)
                except grpc.RpcError as err:
                    if err.code() == grpc.StatusCode.UNAVAILABLE:
                        raise InstanceUnavailable(err) from err
                    if err.code() in BREAKER_FAILURES:
                        raise _CallFailed(err) from err
                    raise

            def discovered() -> Any:
                return self._discovery.call(self._service, attempt)

            try:
                return discovered() if self._bypass() else self._breaker.call(discovered)
            except _CallFailed as failed:
                raise failed.error from None

        return _DiscoveredCall(invoke)

    def _channel(self, instance: Instance) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(instance.grpc_url)
            if channel is None:
                channel = grpc.insecure_channel(instance.grpc_url, options=RECONNECT_OPTIONS)
                self._channels[instance.grpc_url] = channel
            return channel

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("UserDirectory has unary calls only")

    stream_unary = stream_stream = unary_stream

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        raise NotImplementedError("a discovering channel has no single connectivity state")

    unsubscribe = subscribe

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()

    def __enter__(self) -> _DiscoveringChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _DiscoveredCall(grpc.UnaryUnaryMultiCallable):
    """A unary method of a ``_DiscoveringChannel``; blocking calls only."""

    def __init__(self, invoke: Callable[[Any, float | None, Any], Any]) -> None:
        self._invoke = invoke

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Any = None,
        compression: Any = None,
    ) -> Any:
        return self._invoke(request, timeout, metadata)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("blocking calls only")

    future = with_call
