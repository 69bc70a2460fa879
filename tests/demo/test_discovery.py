"""Unit tests for the discovery client: round-robin, fail-over, and what its spans record."""

from __future__ import annotations

import socket

import pytest
import requests
from opentelemetry.trace import SpanKind

from demo_services.client import failure_reason
from demo_services.patterns.discovery import DiscoveryClient, Instance, NoHealthyInstanceError
from tests.demo.helpers import Spans

A, B = Instance("inv", "a", "http://a"), Instance("inv", "b", "http://b")


def test_discovery_round_robins_and_fails_over() -> None:
    lookups = []

    def lookup(service: str) -> list[Instance]:
        lookups.append(service)
        return [A, B]

    client = DiscoveryClient(lookup, cache_ttl_s=60, clock=lambda: 0.0)
    seen = [client.call("inv", lambda i: i.instance_id) for _ in range(4)]
    assert seen == ["a", "b", "a", "b"]
    assert lookups == ["inv"]

    def only_b(instance: Instance) -> str:
        if instance.instance_id == "a":
            raise ConnectionError("refused")
        return instance.instance_id

    assert [client.call("inv", only_b) for _ in range(3)] == ["b", "b", "b"]
    assert client.instances("inv") == [B]


def test_discovery_raises_when_no_instance_answers() -> None:
    client = DiscoveryClient(lambda s: [Instance(s, "a", "http://a")], clock=lambda: 0.0)

    def refuse(instance: Instance) -> None:
        raise ConnectionError("refused")

    with pytest.raises(NoHealthyInstanceError):
        client.call("inv", refuse)
    with pytest.raises(NoHealthyInstanceError):
        DiscoveryClient(lambda s: [], clock=lambda: 0.0).call("inv", refuse)


def test_a_cache_miss_is_a_lookup_span_and_a_hit_costs_none(spans: Spans) -> None:
    now = [0.0]
    client = DiscoveryClient(lambda s: [A, B], cache_ttl_s=2, clock=lambda: now[0], tracer=spans.tracer)

    for name in ("first", "second"):
        with spans.tracer.start_as_current_span(name):
            client.call("inv", lambda i: i.instance_id)
    now[0] = 5.0  # the cached answer is stale now
    with spans.tracer.start_as_current_span("third"):
        client.call("inv", lambda i: i.instance_id)

    finished = {s.name: s for s in spans.finished()}
    lookups = [s for s in spans.finished() if s.name == "discovery.lookup inv"]
    assert len(lookups) == 2
    first_lookup = lookups[0]
    assert first_lookup.kind == SpanKind.CLIENT
    assert first_lookup.parent.span_id == finished["first"].context.span_id
    assert dict(first_lookup.attributes) == {
        "peer.service": "registry",
        "discovery.service": "inv",
        "discovery.cache.hit": False,
        "discovery.candidates": ("a", "b"),
        "discovery.instance.id": "a",
    }
    assert finished["first"].attributes["discovery.cache.hit"] is False
    second = finished["second"]
    assert second.attributes["discovery.cache.hit"] is True
    assert second.attributes["discovery.candidates"] == ("b", "a")
    assert second.attributes["discovery.instance.id"] == "b"
    assert lookups[1].parent.span_id == finished["third"].context.span_id


def test_fail_over_is_an_event_naming_the_failed_instance_the_reason_and_the_next(spans: Spans) -> None:
    client = DiscoveryClient(lambda s: [A, B], cache_ttl_s=60, clock=lambda: 0.0, tracer=spans.tracer)

    def only_b(instance: Instance) -> str:
        if instance.instance_id == "a":
            raise ConnectionRefusedError(111, "Connection refused")
        return instance.instance_id

    with spans.tracer.start_as_current_span("call"):
        assert client.call("inv", only_b) == "b"
    with spans.tracer.start_as_current_span("calm"):
        assert client.call("inv", only_b) == "b"

    finished = {s.name: s for s in spans.finished()}
    call = finished["call"]
    assert call.attributes["discovery.failed_over"] is True
    [event] = [e for e in call.events if e.name == "discovery.failover"]
    assert dict(event.attributes) == {
        "discovery.instance.id": "a",
        "discovery.next_instance.id": "b",
        "discovery.failover.reason": "[Errno 111] Connection refused",
        "error.type": "ConnectionRefusedError",
    }
    assert "discovery.failed_over" not in finished["calm"].attributes
    assert finished["calm"].events == ()


def test_the_last_instance_failing_over_names_no_next_one(spans: Spans) -> None:
    client = DiscoveryClient(lambda s: [A], clock=lambda: 0.0, tracer=spans.tracer)

    def refuse(instance: Instance) -> None:
        raise ConnectionError("refused")

    with spans.tracer.start_as_current_span("call"), pytest.raises(NoHealthyInstanceError):
        client.call("inv", refuse)

    [call] = [s for s in spans.finished() if s.name == "call"]
    [event] = call.events
    assert "discovery.next_instance.id" not in event.attributes
    assert event.attributes["discovery.instance.id"] == "a"


def test_failure_reason_of_a_refused_connection_is_the_systems_words() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connecting is refused
        with pytest.raises(requests.ConnectionError) as refused:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)

    assert failure_reason(refused.value) == "connection refused"
