"""Client-side service discovery: cached lookups, round-robin, fail-over, all traced.

Written by hand because the registry is our own (see ``demo_services/registry.py``); no
library speaks its small JSON protocol. The lookup itself is injected, so this module
does no IO and is tested with plain functions.

Tracing follows ``docs/conventions.md`` ("Service discovery"). Every call records on the
caller's current span (normally the CLIENT span of the call) whether the instances came
from the cache, the candidates in the order they will be tried and the instance chosen.
A cache miss asks the registry under a CLIENT span of its own, ``discovery.lookup
<service>``, so that the registry's handling of it is a child span in the same trace; a
cache hit costs no span (it does no IO). Each fail-over to the next instance is a
``discovery.failover`` event on the caller's span.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

LOOKUP_SPAN = "discovery.lookup"
FAILOVER_EVENT = "discovery.failover"
DISCOVERY_SERVICE = "discovery.service"
CACHE_HIT = "discovery.cache.hit"
CANDIDATES = "discovery.candidates"
INSTANCE_ID = "discovery.instance.id"
FAILED_OVER = "discovery.failed_over"
NEXT_INSTANCE_ID = "discovery.next_instance.id"
FAILOVER_REASON = "discovery.failover.reason"
ERROR_TYPE = "error.type"
PEER_SERVICE = "peer.service"
MAX_REASON = 200

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
    ``failover_errors`` (the request was not handled, e.g. connection refused) the
    instance is dropped from the cache and the next one is tried. When no instance is
    left, ``NoHealthyInstanceError`` is raised from the last error. ``describe(error)``
    gives the short reason a fail-over event records; ``registry`` is the registry's
    service name, the ``peer.service`` of the lookup spans.
    """

    def __init__(
        self,
        lookup: Callable[[str], list[Instance]],
        *,
        failover_errors: tuple[type[BaseException], ...] = (ConnectionError,),
        cache_ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        tracer: Tracer | None = None,
        registry: str = "registry",
        describe: Callable[[BaseException], str] = str,
    ) -> None:
        self._lookup = lookup
        self._failover_errors = failover_errors
        self._cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._tracer = tracer or trace.get_tracer(__name__)
        self._registry = registry
        self._describe = describe
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[Instance]]] = {}
        self._counters: dict[str, itertools.count] = {}

    def instances(self, service: str) -> list[Instance]:
        """Return the cached healthy instances of ``service``, refreshing when stale."""
        cached = self._cached(service)
        return cached if cached is not None else self._refresh(service)

    def evict(self, instance: Instance) -> None:
        """Forget ``instance`` until the next lookup."""
        with self._lock:
            cached = self._cache.get(instance.service)
            if cached is not None:
                kept = [i for i in cached[1] if i.instance_id != instance.instance_id]
                self._cache[instance.service] = (cached[0], kept)

    def call(self, service: str, func: Callable[[Instance], T]) -> T:
        """Call ``func`` with instances of ``service`` in turn until one answers."""
        span = trace.get_current_span()
        ordered = self._choose(service)
        if not ordered:
            raise NoHealthyInstanceError(f"no healthy instance of {service}")
        last_error: BaseException | None = None
        for position, instance in enumerate(ordered):
            try:
                return func(instance)
            except self._failover_errors as err:
                last_error = err
                self.evict(instance)
                event = {
                    INSTANCE_ID: instance.instance_id,
                    FAILOVER_REASON: self._describe(err)[:MAX_REASON],
                    ERROR_TYPE: type(err).__qualname__,
                }
                if position + 1 < len(ordered):
                    event[NEXT_INSTANCE_ID] = ordered[position + 1].instance_id
                span.set_attribute(FAILED_OVER, True)
                span.add_event(FAILOVER_EVENT, event)
        raise NoHealthyInstanceError(f"every instance of {service} refused the call") from last_error

    def _choose(self, service: str) -> list[Instance]:
        """The instances of ``service`` in the order to try them, recorded on the current
        span; on a cache miss, looked up under a span of its own that records them too."""
        span = trace.get_current_span()
        cached = self._cached(service)
        if cached is not None:
            ordered = self._rotate(service, cached)
            _record(span, ordered, hit=True)
            return ordered
        with self._tracer.start_as_current_span(
            f"{LOOKUP_SPAN} {service}",
            kind=SpanKind.CLIENT,
            attributes={PEER_SERVICE: self._registry, DISCOVERY_SERVICE: service},
        ) as lookup:
            ordered = self._rotate(service, self._refresh(service))
            _record(lookup, ordered, hit=False)
        _record(span, ordered, hit=False)
        return ordered

    def _cached(self, service: str) -> list[Instance] | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(service)
            if cached is not None and now - cached[0] < self._cache_ttl_s and cached[1]:
                return list(cached[1])
        return None

    def _refresh(self, service: str) -> list[Instance]:
        now = self._clock()
        found = self._lookup(service)
        with self._lock:
            self._cache[service] = (now, list(found))
        return list(found)

    def _rotate(self, service: str, candidates: Sequence[Instance]) -> list[Instance]:
        if not candidates:
            return []
        with self._lock:
            counter = self._counters.setdefault(service, itertools.count())
            start = next(counter)
        return [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]


def _record(span: trace.Span, ordered: Sequence[Instance], *, hit: bool) -> None:
    span.set_attribute(CACHE_HIT, hit)
    span.set_attribute(CANDIDATES, [i.instance_id for i in ordered])
    if ordered:
        span.set_attribute(INSTANCE_ID, ordered[0].instance_id)
