"""The registry topology: heartbeats read as times, declared versus observed dependencies."""

from __future__ import annotations

from app.analysis.registry import compare_topology


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
