"""The OTLP/HTTP receiver refuses bad input with a clear 4xx and loses nothing already stored."""

from __future__ import annotations

import gzip
import random

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from app import create_app
from tests.conftest import otlp_json_example
from tests.helpers import json_request, pb_request

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}
T0 = 1_700_000_000_000_000_000


def _span(**over):
    base = {"trace_id": "aa" * 16, "span_id": "bb" * 8, "name": "op", "start": T0, "end": T0 + 1000}
    base.update(over)
    return base


def _request(*spans, service="svc"):
    return [{"service": service, "spans": list(spans)}]


@pytest.fixture
def seeded(client, store):
    """A store already holding the spec's example trace, checked again after each refusal."""
    r = client.post("/v1/traces", data=otlp_json_example(), headers=JS)
    assert r.status_code == 200
    return store


def _still_intact(store) -> None:
    spans = store.get_trace("5b8efff798038103d269b633813fc60c")
    assert [s.name for s in spans] == ["I'm a server span"]
    assert store.count_spans() == 1


def _pb_status(response) -> status_pb2.Status:
    assert response.mimetype == "application/x-protobuf"
    return status_pb2.Status.FromString(response.data)


def test_specification_example_is_accepted_and_read_back(client, store):
    r = client.post("/v1/traces", data=otlp_json_example(), headers=JS)
    assert r.status_code == 200 and r.json == {}
    [span] = store.get_trace("5b8efff798038103d269b633813fc60c")
    assert span.parent_span_id == "eee19b7ec3c1b173"  # an orphan: its parent never arrives
    assert span.start_ns == 1544712660000000000
    assert span.resource.scope_attributes == {"my.scope.attribute": "some scope attribute"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        (pb_request(_request(_span())).SerializeToString()[:-7], PB, 400, "not a valid protobuf"),
        (bytes(random.Random(7).randrange(256) for _ in range(500)), PB, 400, "not a valid protobuf"),
        (b'{"resourceSpans": [', JS, 400, "not valid JSON"),
        (b'["not", "an", "object"]', JS, 400, "JSON object"),
        (b'{"resourceSpans": {"a": 1}}', JS, 400, "expected an array"),
        (b"", PB, 400, "empty request body"),
        (b"", JS, 400, "empty request body"),
        (b"\xff\xfe\x00", JS, 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, JS, 400, "JSON"),
    ],
    ids=[
        "truncated-protobuf",
        "random-bytes",
        "invalid-json",
        "json-array",
        "wrong-shape",
        "empty-protobuf",
        "empty-json",
        "bad-utf8-json",
        "deeply-nested-json",
    ],
)
def test_malformed_bodies_get_400_with_a_status_message(seeded, client, body, headers, status, fragment):
    r = client.post("/v1/traces", data=body, headers=headers)
    assert r.status_code == status
    message = _pb_status(r).message if headers is PB else r.json["message"]
    assert fragment in message
    _still_intact(seeded)


def test_wrong_content_type_gets_415(seeded, client):
    r = client.post("/v1/traces", data=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert "unsupported Content-Type" in r.json["message"]
    r = client.post("/v1/traces", data=b"hello")
    assert r.status_code == 415
    _still_intact(seeded)


def test_unknown_content_encoding_gets_415(seeded, client):
    r = client.post("/v1/traces", data=b"x", headers={**PB, "Content-Encoding": "br"})
    assert r.status_code == 415
    assert "Content-Encoding" in _pb_status(r).message
    _still_intact(seeded)


def test_receiver_rejects_gzip_bomb_with_413(settings, store):
    app = create_app(settings.replace(max_body_mb=1), store=store)
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))
    assert len(bomb) < 200_000
    r = app.test_client().post("/v1/traces", data=bomb, headers={**PB, "Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert "decompressed body is over the limit" in _pb_status(r).message


def test_oversized_body_gets_413_before_decoding(settings, store):
    app = create_app(settings.replace(max_body_mb=1), store=store)
    r = app.test_client().post("/v1/traces", data=b"\x0a" * (1024 * 1024 + 1), headers=PB)
    assert r.status_code == 413
    assert "over the limit" in _pb_status(r).message


def test_invalid_gzip_gets_400(seeded, client):
    r = client.post("/v1/traces", data=b"\x1f\x8b\x08garbage", headers={**JS, "Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert "gzip" in r.json["message"]
    _still_intact(seeded)


@pytest.mark.parametrize("encode", ["protobuf", "json"])
def test_spans_with_bad_ids_or_times_are_rejected_in_partial_success_and_the_rest_stored(seeded, client, encode):
    spans = [
        _span(span_id="01" * 8),
        _span(span_id="02" * 8, trace_id="aa" * 8),  # a 64-bit trace id is too short for OTLP
        _span(span_id="03" * 8, trace_id="00" * 16),  # all zeros is invalid
        _span(span_id="04" * 8, start=T0 + 5000, end=T0),  # ends before it starts
    ]
    if encode == "protobuf":
        r = client.post("/v1/traces", data=pb_request(_request(*spans)).SerializeToString(), headers=PB)
        response = ExportTraceServiceResponse.FromString(r.data)
        rejected, message = response.partial_success.rejected_spans, response.partial_success.error_message
    else:
        r = client.post("/v1/traces", data=json_request(_request(*spans)), headers=JS)
        rejected, message = int(r.json["partialSuccess"]["rejectedSpans"]), r.json["partialSuccess"]["errorMessage"]
    assert r.status_code == 200
    assert rejected == 3
    assert "traceId must be" in message and "all zeros" in message and "before startTimeUnixNano" in message
    assert [s.span_id for s in seeded.get_trace("aa" * 16)] == ["01" * 8]
    assert seeded.count_spans() == 2


def test_json_span_with_wrong_id_length_is_reported_with_its_position(client, store):
    r = client.post("/v1/traces", data=json_request(_request(_span(trace_id="abc"))), headers=JS)
    assert r.status_code == 200
    assert r.json["partialSuccess"]["rejectedSpans"] == "1"
    assert (
        "resourceSpans[0].scopeSpans[0].spans[0]: traceId must be 32 hex characters"
        in r.json["partialSuccess"]["errorMessage"]
    )


def test_thousands_of_attributes_are_truncated_and_counted(client, store, settings):
    attrs = {f"k{i}": i for i in range(5000)}
    r = client.post("/v1/traces", data=pb_request(_request(_span(attributes=attrs))).SerializeToString(), headers=PB)
    assert r.status_code == 200
    response = ExportTraceServiceResponse.FromString(r.data)
    assert response.partial_success.rejected_spans == 0
    assert "truncated" in response.partial_success.error_message
    [span] = store.get_trace("aa" * 16)
    assert len(span.attributes) == settings.max_attributes
    assert span.dropped_attributes_count == 5000 - settings.max_attributes


def test_huge_span_name_is_truncated_to_the_limit(client, store, settings):
    r = client.post("/v1/traces", data=json_request(_request(_span(name="n" * 1_000_000))), headers=JS)
    assert r.status_code == 200
    assert "truncated" in r.json["partialSuccess"]["errorMessage"]
    [span] = store.get_trace("aa" * 16)
    assert span.name == "n" * settings.max_value_length


def test_values_nested_too_deep_reject_the_span(client, store):
    deep: object = "leaf"
    for _ in range(40):
        deep = [deep]
    body = pb_request(_request(_span(attributes={"deep": deep}), _span(span_id="cc" * 8))).SerializeToString()
    r = client.post("/v1/traces", data=body, headers=PB)
    assert r.status_code == 200
    response = ExportTraceServiceResponse.FromString(r.data)
    assert response.partial_success.rejected_spans == 1
    assert "nested deeper than" in response.partial_success.error_message
    assert [s.span_id for s in store.get_trace("aa" * 16)] == ["cc" * 8]


def test_control_characters_are_stored_and_returned_as_text(client, store):
    name = "a\x00b\x07c\u202e\ud800"
    span = _span(name=name, start=T0, end=T0 + 1, attributes={"k\x01": "<script>\x02"})
    body = json_request(_request(span, service="svc\x1b[31m"))
    r = client.post("/v1/traces", data=body, headers=JS)
    assert r.status_code == 200, r.json
    [span] = store.get_trace("aa" * 16)
    assert span.name == "a\ufffdb\x07c\u202e\ufffd"
    assert span.attributes == {"k\x01": "<script>\x02"}
    assert span.service == "svc\x1b[31m"
    r = client.get(f"/api/traces/{'aa' * 16}")
    assert r.status_code == 200
    assert r.json["data"][0]["spans"][0]["operationName"] == span.name


def test_retried_batch_is_stored_once(client, store):
    body = pb_request(_request(_span(), _span(span_id="cc" * 8, parent="bb" * 8))).SerializeToString()
    for _ in range(3):
        assert client.post("/v1/traces", data=body, headers=PB).status_code == 200
    assert len(store.get_trace("aa" * 16)) == 2
    [summary] = store.get_summaries(["aa" * 16])
    assert summary.span_count == 2


def test_bearer_token_is_required_when_configured(settings, store):
    app = create_app(settings.replace(auth_token="s3cret"), store=store)
    client = app.test_client()
    body = pb_request(_request(_span())).SerializeToString()
    r = client.post("/v1/traces", data=body, headers=PB)
    assert r.status_code == 401
    assert "bearer token" in _pb_status(r).message
    assert client.post("/v1/traces", data=body, headers={**PB, "Authorization": "Bearer s3cret"}).status_code == 200
