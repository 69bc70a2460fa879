"""The demo's children get loopback ports that an outgoing connection cannot take first."""

from __future__ import annotations

import socket

from demo_services.demo_plan import FREE_PORTS_FROM, ephemeral_low, free_ports


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    ports = free_ports(12)
    assert len(set(ports)) == 12
    low = ephemeral_low()
    assert all(FREE_PORTS_FROM <= p < low for p in ports), (ports, low)
    held = []
    try:
        for port in ports:  # each was free a moment ago, so binding it now succeeds
            sock = socket.socket()
            held.append(sock)
            sock.bind(("127.0.0.1", port))
    finally:
        for sock in held:
            sock.close()


def test_picks_differ_from_one_demo_to_the_next():
    assert free_ports(12) != free_ports(12)
