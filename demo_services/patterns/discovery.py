"""Client-side service discovery: cached lookups, round-robin, fail-over.

Written by hand because the registry is our own (see ``demo_services/registry.py``); no
library speaks its small JSON protocol. The lookup itself is injected, so this module
does no IO and is tested with plain functions.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from opentelemetry import trace

FAILOVER_EVENT = "discovery.failover"

T = TypeVar("T")


class NoHealthyInstanceError(Exception):
    """No healthy instance of a service is known (or every one refused the call)."""


@dataclass(frozen=True)
class Instance:
    """One registered instance of a service; ``grpc_url`` (host:port) when it also speaks gRPC."""

    service: str
    instance_id: str
    url: str
    grpc_url: str = ""


class DiscoveryClient:
    """Find instances of a service, spread calls over them and fail over.

    ``lookup(service)`` returns the healthy instances the registry knows; results are
    cached for ``cache_ttl_s`` seconds of ``clock``. ``call(service, func)`` hands
    instances to ``func`` in round-robin order; when ``func`` raises one of
    ``failover_errors`` (the request never reached the instance, e.g. connection
    refused) the instance is dropped from the cache and the next one is tried. When no
    instance is left, ``NoHealthyInstanceError`` is raised from the last error.
    """

    def __init__(
        self,
        lookup: Callable[[str], list[Instance]],
        *,
        failover_errors: tuple[type[BaseException], ...] = (ConnectionError,),
        cache_ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._failover_errors = failover_errors
        self._cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[Instance]]] = {}
        self._counters: dict[str, itertools.count] = {}

    def instances(self, service: str) -> list[Instance]:
        """Return the cached healthy instances of ``service``, refreshing when stale."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(service)
            if cached is not None and now - cached[0] < self._cache_ttl_s and cached[1]:
                return list(cached[1])
        found = self._lookup(service)
        with self._lock:
            self._cache[service] = (now, list(found))
        return list(found)

    def evict(self, instance: Instance) -> None:
        """Forget ``instance`` until the next lookup."""
        with self._lock:
            cached = self._cache.get(instance.service)
            if cached is not None:
                kept = [i for i in cached[1] if i.instance_id != instance.instance_id]
                self._cache[instance.service] = (cached[0], kept)

    def call(self, service: str, func: Callable[[Instance], T]) -> T:
        """Call ``func`` with instances of ``service`` in turn until one answers."""
        candidates = self.instances(service)
        if not candidates:
            raise NoHealthyInstanceError(f"no healthy instance of {service}")
        with self._lock:
            counter = self._counters.setdefault(service, itertools.count())
            start = next(counter)
        ordered = [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]
        last_error: BaseException | None = None
        for instance in ordered:
            try:
                return func(instance)
            except self._failover_errors as err:
                last_error = err
                self.evict(instance)
                trace.get_current_span().add_event(
                    FAILOVER_EVENT,
                    {"discovery.instance.id": instance.instance_id, "error": str(err)},
                )
        raise NoHealthyInstanceError(f"every instance of {service} refused the call") from last_error
