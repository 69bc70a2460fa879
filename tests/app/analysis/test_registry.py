"""The registry topology: heartbeats read as times, declared versus observed dependencies,
lookups per caller."""

from __future__ import annotations

from app.analysis.registry import compare_topology, lookups_by_caller
from collectors.model import EdgeStats, Histogram


def test_epoch_heartbeats_from_the_demo_registry_read_as_utc_times():
    topology = compare_topology(
        [
            {
                "service": "orders",
                "instance_id": "orders",
                "url": "u",
                "healthy": True,
                "last_heartbeat": 1_700_000_000.25,
                "depends_on": ["payment"],
            }
        ],
        [],
        [],
    )
    [instance] = topology.instances
    assert instance.last_heartbeat == "2023-11-14 22:13:20.250"


def _edge(parent: str, child: str, mode: str, count: int, errors: int = 0) -> EdgeStats:
    return EdgeStats(parent, child, mode, count, errors, count * 1000, Histogram((count,), 1000))


def test_a_lookup_counts_once_whether_the_registry_was_traced_or_only_named():
    edges = [
        _edge("orders", "registry", "sync", 4, 1),
        _edge("orders", "registry", "peer", 4, 1),  # the same lookups, by peer.service
        _edge("gateway", "registry", "peer", 7),  # a registry that sent no spans
        _edge("gateway", "orders", "sync", 9),
    ]

    lookups = lookups_by_caller(edges)

    assert [(lk.caller, lk.count, lk.error_count) for lk in lookups] == [("gateway", 7, 0), ("orders", 4, 1)]
    assert compare_topology([], edges, []).observed == [("gateway", "orders")]
