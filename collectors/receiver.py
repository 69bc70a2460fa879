"""POST /v1/traces: the OTLP/HTTP receiver; and POST /api/v2/spans, Zipkin v2 JSON.

Checks the content type and encoding, reads the body within the size limit (chunked
bodies included), decodes it, writes it, and answers in OTLP terms: an
ExportTraceServiceResponse on success (with ``partial_success`` for rejected spans), a
``google.rpc.Status`` in the request's encoding on refusal. A 200 is sent only after
the batch is committed. Zipkin's spans (:mod:`collectors.zipkin`) go the same way, under
the same limits, and are answered 202 as Zipkin's own server does.
"""

from __future__ import annotations

import gc
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, request
from google.rpc import code_pb2, status_pb2

from collectors.bearer import CHALLENGE, authorized
from collectors.model import DecodedBatch
from collectors.otlp import DecodeError, Limits, decode_json, decode_protobuf, encode_response
from collectors.store import SpanStore, StoreError
from collectors.zipkin import decode_zipkin_json

bp = Blueprint("receiver", __name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_ALIASES = {PROTOBUF, "application/protobuf"}
_READ_CHUNK = 256 * 1024
RETRY_AFTER_OVERLOADED_S = 1
RETRY_AFTER_STORE_S = 5
ZIPKIN_PATH = "/api/v2/spans"


@dataclass
class ReceiverConfig:
    """What the receiver needs besides the store: limits and the in-flight bound."""

    max_body_bytes: int
    limits: Limits
    max_inflight: int
    auth_token: str = ""

    def __post_init__(self) -> None:
        self.inflight = threading.BoundedSemaphore(self.max_inflight)


class _Refusal(Exception):
    def __init__(self, status: int, code: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


@bp.post("/v1/traces")
def export_traces() -> Response:
    """Receive one ExportTraceServiceRequest."""
    config: ReceiverConfig = current_app.extensions["spyglass.receiver"]
    content_type = (request.mimetype or "").lower()
    as_json = content_type == JSON
    try:
        _check_token(config)
        if not as_json and content_type not in _PROTOBUF_ALIASES:
            raise _Refusal(
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported Content-Type {request.content_type or '(none)'!r}: send {PROTOBUF} or {JSON}",
            )
        decoded = _ingest(config, decode_json if as_json else decode_protobuf, "an ExportTraceServiceRequest")
    except _Refusal as refusal:
        return _status_response(refusal, as_json)
    body, mimetype = encode_response(decoded.rejected_count, decoded.error_message(), as_json=as_json)
    return Response(body, status=200, mimetype=mimetype)


@bp.post(ZIPKIN_PATH)
def zipkin_spans() -> Response:
    """Receive a Zipkin v2 JSON list of spans: 202 once stored, as Zipkin's own server
    answers; refusals as for OTLP/JSON (a ``google.rpc.Status`` JSON body)."""
    config: ReceiverConfig = current_app.extensions["spyglass.receiver"]
    try:
        _check_token(config)
        if (request.mimetype or "").lower() != JSON:
            raise _Refusal(
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported Content-Type {request.content_type or '(none)'!r}: send {JSON} (Zipkin v2 JSON)",
            )
        _ingest(config, decode_zipkin_json, "a JSON array of Zipkin v2 spans")
    except _Refusal as refusal:
        return _status_response(refusal, True)
    return Response(status=202)


def _check_token(config: ReceiverConfig) -> None:
    if not authorized(request.headers.get("Authorization"), config.auth_token):
        raise _Refusal(401, code_pb2.UNAUTHENTICATED, "missing or wrong bearer token")


def _ingest(config: ReceiverConfig, decode: Callable[[bytes, Limits], DecodedBatch], expected: str) -> DecodedBatch:
    """Take an in-flight slot, read the body, decode it and commit it; raises _Refusal."""
    store: SpanStore = current_app.extensions["spyglass.store"]
    if not config.inflight.acquire(timeout=2.0):
        raise _Refusal(503, code_pb2.UNAVAILABLE, "collector is busy, retry later", RETRY_AFTER_OVERLOADED_S)
    try:
        body = _read_body(config.max_body_bytes)
        if not body:
            raise _Refusal(400, code_pb2.INVALID_ARGUMENT, f"empty request body: expected {expected}")
        with _ONE_BATCH_AT_A_TIME, cyclic_gc_paused():
            try:
                decoded = decode(body, config.limits)
            except DecodeError as err:
                raise _Refusal(400, code_pb2.INVALID_ARGUMENT, str(err)) from err
            try:
                store.write_spans(decoded.spans)
            except StoreError as err:
                current_app.logger.warning("ingest refused: %s", err)
                raise _Refusal(
                    503,
                    code_pb2.UNAVAILABLE,
                    "the store cannot commit right now, retry later",
                    RETRY_AFTER_STORE_S,
                ) from err
    finally:
        config.inflight.release()
    return decoded


_ONE_BATCH_AT_A_TIME = threading.Lock()
"""Decoding and writing are pure Python: threads of one process doing them at once only
share one interpreter lock, and a thread holding the store's write lock then waits for
it at every return from SQLite, stretching the section every worker queues for (held
61 ms instead of about 8 for a batch, measured). So a process handles one batch at a
time; the other workers, in processes of their own, decode meanwhile."""


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while one batch is decoded and written.

    A batch allocates a few hundred thousand dicts, lists and tuples, nearly all freed by
    reference counting; the collector would run a few hundred times meanwhile, and its
    older generations walk the whole heap of a server process (a third of decoding a JSON
    batch, measured). Paused, it runs once the batch is done, when its objects are gone.
    The batch is bounded by the body limit, so the pause is too.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _read_body(limit: int) -> bytes:
    """Read the (possibly chunked, possibly gzipped) body, bounded before and after inflating."""
    length = request.content_length
    if length is not None and length > limit:
        raise _Refusal(
            413, code_pb2.INVALID_ARGUMENT, f"request body of {length} bytes is over the limit of {limit} bytes"
        )
    stream = request.stream
    parts, total = [], 0
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise _Refusal(413, code_pb2.INVALID_ARGUMENT, f"request body is over the limit of {limit} bytes")
        parts.append(chunk)
    raw = b"".join(parts)
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding in ("identity", ""):
        return raw
    if encoding != "gzip":
        raise _Refusal(415, code_pb2.INVALID_ARGUMENT, f"unsupported Content-Encoding {encoding!r}: send gzip or none")
    return _gunzip(raw, limit)


def _gunzip(raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as err:
        raise _Refusal(400, code_pb2.INVALID_ARGUMENT, f"body is not valid gzip: {err}") from err
    if len(out) > limit or inflater.unconsumed_tail:
        raise _Refusal(413, code_pb2.INVALID_ARGUMENT, f"decompressed body is over the limit of {limit} bytes")
    if not inflater.eof:
        raise _Refusal(400, code_pb2.INVALID_ARGUMENT, "body is truncated gzip")
    return out


def _status_response(refusal: _Refusal, as_json: bool) -> Response:
    if as_json or (request.mimetype or "").lower() not in _PROTOBUF_ALIASES:
        payload = json.dumps({"code": refusal.code, "message": refusal.message}).encode()
        mimetype = JSON
    else:
        payload = status_pb2.Status(code=refusal.code, message=refusal.message).SerializeToString()
        mimetype = PROTOBUF
    response = Response(payload, status=refusal.status, mimetype=mimetype)
    if refusal.retry_after is not None:
        response.headers["Retry-After"] = str(refusal.retry_after)
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    return response
