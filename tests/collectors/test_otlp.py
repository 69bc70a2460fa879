"""The OTLP decoders: protobuf and JSON agree, limits hold, and per-span problems stay per span."""

from __future__ import annotations

import math
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.otlp import Limits, decode_json, decode_protobuf
from tests.conftest import otlp_json_example
from tests.helpers import json_request, pb_request

hexid = lambda n: st.text("0123456789abcdef", min_size=n, max_size=n).filter(lambda s: s.strip("0"))  # noqa: E731
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
scalar = st.one_of(
    text,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.binary(max_size=10),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
attrs = st.dictionaries(st.text(string.ascii_letters + ".", min_size=1, max_size=12), value, max_size=5)


@st.composite
def span_desc(draw):
    start = draw(st.integers(min_value=1, max_value=2**62))
    return {
        "trace_id": draw(hexid(32)),
        "span_id": draw(hexid(16)),
        "parent": draw(st.one_of(st.just(""), hexid(16))),
        "name": draw(text),
        "kind": draw(st.integers(min_value=0, max_value=5)),
        "start": start,
        "end": start + draw(st.integers(min_value=0, max_value=10**12)),
        "attributes": draw(attrs),
        "events": draw(st.lists(st.tuples(st.integers(min_value=0, max_value=2**63), text, attrs), max_size=2)),
        "links": draw(st.lists(st.tuples(hexid(32), hexid(16), attrs), max_size=2)),
        "status": draw(st.tuples(st.integers(min_value=0, max_value=2), text)),
    }


requests_ = st.lists(
    st.fixed_dictionaries(
        {
            "service": text.filter(bool),
            "resource": attrs,
            "scope": st.tuples(text, text),
            "spans": st.lists(span_desc(), max_size=4),
        }
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(requests_)
def test_json_and_protobuf_decoding_agree(desc):
    from_pb = decode_protobuf(pb_request(desc).SerializeToString())
    from_json = decode_json(json_request(desc))
    assert from_json.rejections == from_pb.rejections
    assert from_json.spans == from_pb.spans


def test_specification_example_decodes_with_lowercase_ids_and_resource():
    batch = decode_json(otlp_json_example())
    [span] = batch.spans
    assert span.trace_id == "5b8efff798038103d269b633813fc60c"
    assert span.kind == 2
    assert span.service == "my.service"
    assert span.resource.scope_name == "my.library"
    assert batch.rejections == []


def test_missing_service_name_becomes_unknown_service():
    body = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"%s","spanId":"%s","startTimeUnixNano":1,"endTimeUnixNano":2}]}]}]}'
        % (b"ab" * 16, b"cd" * 8)
    )
    [span] = decode_json(body).spans
    assert span.service == "unknown_service"


def test_enum_names_and_snake_case_fields_are_accepted():
    body = (
        b'{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"%s","span_id":"%s","kind":"SPAN_KIND_CLIENT","start_time_unix_nano":"5","end_time_unix_nano":"9","status":{"code":"STATUS_CODE_ERROR"}}]}]}]}'
        % (b"ab" * 16, b"cd" * 8)
    )
    [span] = decode_json(body).spans
    assert (span.kind, span.status_code, span.duration_ns) == (3, 2, 4)


def test_json_a_strict_parser_refuses_is_read_as_before():
    # NaN literals and integers beyond 64 bits are not strict JSON; the decoder keeps
    # accepting the first and rejects only the span holding the second.
    spans = b",".join(
        b'{"traceId":"%s","spanId":"%s","startTimeUnixNano":1,"endTimeUnixNano":%s,'
        b'"attributes":[{"key":"x","value":{"doubleValue":NaN}}]}' % (b"ab" * 16, sid, end)
        for sid, end in ((b"cd" * 8, b"2"), (b"ef" * 8, b"123456789012345678901234567890"))
    )
    batch = decode_json(b'{"resourceSpans":[{"scopeSpans":[{"spans":[%s]}]}]}' % spans)
    [span] = batch.spans
    assert span.span_id == "cd" * 8
    assert math.isnan(span.attributes["x"])
    [rejection] = batch.rejections
    assert "does not fit in 64 bits" in rejection.reason


def test_limits_truncate_events_links_and_values():
    desc = [
        {
            "service": "s",
            "spans": [
                {
                    "trace_id": "ab" * 16,
                    "span_id": "cd" * 8,
                    "start": 1,
                    "end": 2,
                    "name": "x" * 50,
                    "events": [(1, f"e{i}", {}) for i in range(10)],
                    "links": [("12" * 16, "34" * 8, {}) for _ in range(10)],
                    "attributes": {"long": "y" * 50},
                }
            ],
        }
    ]
    limits = Limits(max_events=3, max_links=2, max_value_length=20)
    for batch in (
        decode_protobuf(pb_request(desc).SerializeToString(), limits),
        decode_json(json_request(desc), limits),
    ):
        [span] = batch.spans
        assert len(span.events) == 3 and span.dropped_events_count == 7
        assert len(span.links) == 2 and span.dropped_links_count == 8
        assert span.name == "x" * 20 and span.attributes["long"] == "y" * 20
        assert batch.truncated and "truncated" in batch.error_message()
