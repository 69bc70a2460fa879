"""OTLP/gRPC: the TraceService Export method, writing through the same decoder and store.

Runs in its own process beside gunicorn (gRPC servers do not survive forking), started
by ``spyglass serve --otlp-grpc-enabled``. Refusals use gRPC status codes as the OTLP
specification says: INVALID_ARGUMENT for a bad request, UNAVAILABLE (retryable) when the
store cannot commit, UNAUTHENTICATED when ``SPYGLASS_AUTH_TOKEN`` is set and the call's
``authorization`` metadata does not carry it as a bearer token.
"""

from __future__ import annotations

import signal
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from collectors.bearer import authorized
from collectors.otlp import DecodeError, Limits, decode_protobuf
from collectors.store import SpanStore, StoreError


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """Export: decode, store, acknowledge after the commit."""

    def __init__(self, store: SpanStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC's name)
        try:
            decoded = decode_protobuf(request.SerializeToString(), self.limits)
        except DecodeError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        try:
            self.store.write_spans(decoded.spans)
        except StoreError as err:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the store cannot commit right now: {err}")
        response = trace_service_pb2.ExportTraceServiceResponse()
        message = decoded.error_message()
        if decoded.rejected_count or message:
            response.partial_success.rejected_spans = decoded.rejected_count
            response.partial_success.error_message = message
        return response


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call whose ``authorization`` metadata is not ``Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._refusal = grpc.unary_unary_rpc_method_handler(_refuse)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        # gRPC metadata keys arrive in lower case.
        offered = [v for k, v in handler_call_details.invocation_metadata or () if k == "authorization"]
        if len(offered) == 1 and authorized(offered[0], self.token):
            return continuation(handler_call_details)
        return self._refusal


def _refuse(_request: Any, context: grpc.ServicerContext) -> None:
    context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or wrong bearer token: send the metadata authorization: Bearer <token>",
    )


def serve(
    addr: str, store_url: str, limits: Limits, max_body_bytes: int, auth_token: str = "", ready: Any = None
) -> None:
    """Serve OTLP/gRPC on ``addr`` until SIGTERM or SIGINT; with ``auth_token``, only to its bearers."""
    store = SpanStore.from_url(store_url, migrate=False, background_checkpoints=False)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[BearerTokenInterceptor(auth_token)] if auth_token else [],
        options=[("grpc.max_receive_message_length", max_body_bytes)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(store, limits), server)
    server.add_insecure_port(addr)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if ready is not None:
        ready.set()
    stop.wait()
    server.stop(grace=5).wait()
    store.close()
