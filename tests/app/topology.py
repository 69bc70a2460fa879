"""A generated topology of 50 services, deterministic, for the graph's legibility tests:
a gateway, front services, deeper layers, asynchronous events, databases, registry lookups,
a cycle and a service that calls itself."""

from __future__ import annotations

import random

SERVICES = 50


def fifty_services(seed: int = 14) -> list[tuple[str, str, str]]:
    """(caller, callee, mode) triples; mode is sync, async, lookup (a registry lookup) or database."""
    rng = random.Random(seed)
    names = ["gateway", "registry"] + [f"svc-{i:02d}" for i in range(SERVICES - 2)]
    tiers = [names[2:8], names[8:20], names[20:34], names[34:]]
    calls: set[tuple[str, str, str]] = set()
    for front in tiers[0]:
        calls.add(("gateway", front, "sync"))
    for depth, tier in enumerate(tiers[:-1]):
        deeper = [n for t in tiers[depth + 1 :] for n in t]
        for caller in tier:
            for callee in rng.sample(deeper, rng.randint(1, 3)):
                calls.add((caller, callee, "async" if rng.random() < 0.2 else "sync"))
            if rng.random() < 0.3:
                calls.add((caller, "registry", "lookup"))
    for leaf in tiers[-1]:
        if rng.random() < 0.4:
            calls.add((leaf, f"postgresql:{leaf}", "database"))
    for depth, tier in enumerate(tiers[1:]):
        for n in tier:
            if not any(callee == n for _, callee, _ in calls):
                calls.add((rng.choice(tiers[depth]), n, "sync"))
    calls.add(("svc-40", "svc-41", "sync"))  # two services calling each other: a cycle
    calls.add(("svc-41", "svc-40", "sync"))
    calls.add(("svc-12", "svc-12", "sync"))  # a service that calls itself
    return sorted(calls)
