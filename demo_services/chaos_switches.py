"""A demo service's fault switches (``Chaos``), changed through its guarded ``/control``:
error rate, latency with jitter, hang, out of service, its business faults (out of stock,
card declined), breakers bypassed, compensations skipped, and ``hold_at`` (a saga step's
or an order event's name, where orders waits while it is set)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HANG_LIMIT_S = 60.0
"""The longest a request is held by ``hang`` or ``hold_at``."""
MAX_HOLD_POINT = 100


@dataclass
class Chaos:
    """Current failure injection of a service; changed through ``/control``."""

    error_rate: float = 0.0
    latency_ms: int = 0
    jitter_ms: int = 0
    hang: bool = False
    out_of_stock: bool = False
    decline: bool = False
    stopped: bool = False
    bypass_breakers: bool = False
    skip_compensation: bool = False
    hold_at: str = ""
    holding: str = field(default="", repr=False)
    """Where a request is held right now (``hold_at`` matched), shown by /health."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes``; raise ``ValueError`` on an unknown key or bad value."""
        with self._lock:
            for key, value in changes.items():
                if key not in _CHAOS_KEYS:
                    raise ValueError(f"unknown control setting {key!r}")
                current = getattr(self, key)
                if isinstance(current, str):
                    if not isinstance(value, str) or len(value) > MAX_HOLD_POINT:
                        raise ValueError(f"{key} must be a string of at most {MAX_HOLD_POINT} characters")
                elif isinstance(current, bool):
                    if not isinstance(value, bool):
                        raise ValueError(f"{key} must be true or false, got {value!r}")
                elif isinstance(current, (int, float)):
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise ValueError(f"{key} must be a number, got {value!r}")
                    if value < 0 or (key == "error_rate" and value > 1):
                        raise ValueError(f"{key} out of range: {value!r}")
                    value = type(current)(value)
                setattr(self, key, value)

    def public(self) -> dict[str, Any]:
        """Return the settings as JSON-ready values."""
        return {key: getattr(self, key) for key in _CHAOS_KEYS}


_CHAOS_KEYS = (
    "error_rate",
    "latency_ms",
    "jitter_ms",
    "hang",
    "out_of_stock",
    "decline",
    "stopped",
    "bypass_breakers",
    "skip_compensation",
    "hold_at",
)


def added_delay_s(latency_ms: int, jitter_ms: int) -> float:
    """One request's injected delay: ``latency_ms`` plus or minus up to ``jitter_ms``
    (uniformly), never below zero; in seconds."""
    return max(0.0, latency_ms + random.uniform(-jitter_ms, jitter_ms)) / 1000


def hold_while(chaos: Chaos, point: str) -> None:
    """Wait while ``chaos.hold_at`` names ``point`` (at most ``HANG_LIMIT_S``)."""
    deadline = time.monotonic() + HANG_LIMIT_S
    if chaos.hold_at != point:
        return
    chaos.holding = point
    try:
        while chaos.hold_at == point and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        chaos.holding = ""
