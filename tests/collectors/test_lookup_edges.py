"""Registry lookups are an edge kind of their own, from the documented discovery.service
attribute on the lookup's spans, whichever of the two arrives first."""

from __future__ import annotations

import time

from collectors.model import KIND_CLIENT, KIND_SERVER, Resource, Span
from collectors.store import SpanStore

NOW = time.time_ns()
ORDERS = Resource("orders", {"service.name": "orders"})
REGISTRY = Resource("registry", {"service.name": "registry"})
WINDOW = (NOW - 60_000_000_000, NOW + 60_000_000_000)


def lookup(trace: int, *, registry_names_it: bool = True) -> list[Span]:
    """orders' lookup CLIENT span and the registry's SERVER span under it."""
    tid = f"{trace:032x}"
    looked_up = {"discovery.service": "inventory"}
    return [
        Span(
            tid,
            "a" * 16,
            "",
            "discovery.lookup inventory",
            KIND_CLIENT,
            NOW,
            NOW + 2_000_000,
            ORDERS,
            {"peer.service": "registry", **looked_up},
        ),
        Span(
            tid,
            "b" * 16,
            "a" * 16,
            "GET /services/<name>",
            KIND_SERVER,
            NOW + 100,
            NOW + 1_000_000,
            REGISTRY,
            looked_up if registry_names_it else {},
        ),
    ]


def modes(store: SpanStore) -> dict[str, int]:
    found = store.find_edge_stats(*WINDOW)
    return {e.mode: e.call_count for e in found if (e.parent, e.child) == ("orders", "registry")}


def test_a_lookup_is_a_lookup_edge_in_either_arrival_order(store: SpanStore):
    client_first = lookup(1)
    store.write_spans(client_first[:1])
    store.write_spans(client_first[1:])
    server_first = lookup(2, registry_names_it=False)  # the caller's span alone says it
    store.write_spans(server_first[1:])
    store.write_spans(server_first[:1])
    assert modes(store) == {"lookup": 2, "peer-lookup": 2}
    assert {(e.parent, e.child) for e in store.dependencies(*WINDOW)} == {("orders", "registry")}


def test_a_call_without_the_attribute_stays_synchronous(store: SpanStore):
    spans = lookup(3, registry_names_it=False)
    spans[0].attributes.pop("discovery.service")
    store.write_spans(spans)
    assert modes(store) == {"sync": 1, "peer": 1}
