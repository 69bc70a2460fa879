"""The demo services' fault settings, read and changed through their guarded /control.

Targets come only from the registry (``Settings.registry_url``): an instance id is looked
up there, and its URL must be plain ``http`` on a loopback address, or the change is
refused before any request is made. Values are checked here too, so a bad one is refused
with a message naming it rather than passed on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from app.registry_client import RegistryUnavailableError, fetch_instances
from demo_services.protocol import CONTROL_TOKEN_HEADER

CONTROL_TIMEOUT_S = 2.0
MAX_LATENCY_MS = 60_000
CLEAR = {
    "error_rate": 0.0,
    "latency_ms": 0,
    "jitter_ms": 0,
    "hang": False,
    "out_of_stock": False,
    "decline": False,
    "bypass_breakers": False,
}
"""Every setting the dashboard changes, at its cleared value. (Stopping an instance is
not a setting: the launcher ends its process, see :mod:`app.demo_processes`.)"""
SETTINGS = tuple(CLEAR)
FLAGS = tuple(key for key, value in CLEAR.items() if isinstance(value, bool))
WITH_BREAKERS = ("gateway", "orders")
"""The services whose calls go through circuit breakers (which can be bypassed)."""
BUSINESS_FAULTS = {"inventory": "out_of_stock", "payment": "decline"}
"""The business fault each service understands (others have none)."""


class TargetError(ValueError):
    """A target that may not be controlled: unknown to the registry, or not on loopback."""


class ControlError(RuntimeError):
    """The service's /control could not be reached or refused the change."""


@dataclass(frozen=True)
class Target:
    """One registered instance the dashboard may control."""

    service: str
    instance_id: str
    url: str
    healthy: bool
    settings: dict[str, Any] = field(default_factory=dict)
    problem: str = ""
    state: str = ""
    """Its process as the demo launcher reports it (running, stopped, down); "" unknown."""

    @property
    def business_fault(self) -> str | None:
        """The business fault switch of this service, if it has one."""
        return BUSINESS_FAULTS.get(self.service)

    @property
    def has_breakers(self) -> bool:
        """Whether this service calls others through circuit breakers."""
        return self.service in WITH_BREAKERS


def is_loopback_url(url: str) -> str | None:
    """None when ``url`` is http on a loopback address; otherwise why it is refused."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return f"{url[:200]!r} is not a plain http URL"
    host = parts.hostname or ""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        return f"{host[:100]!r} is not a loopback address (only services on this machine can be targeted)"
    return f"{host[:100]} is not a loopback address (only services on this machine can be targeted)"


def list_targets(registry_url: str, control_token: str) -> list[Target]:
    """Every loopback instance in the registry with its current settings (asked in
    parallel); raises RegistryUnavailableError when the registry cannot be asked."""
    raw = fetch_instances(registry_url)
    found = []
    for item in raw:
        url = str(item.get("url", ""))
        if is_loopback_url(url) is not None:
            continue
        found.append(
            Target(str(item.get("service", "")), str(item.get("instance_id", "")), url, item.get("healthy") is True)
        )
    found.sort(key=lambda t: (t.service, t.instance_id))
    if not found:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(found))) as pool:
        return list(pool.map(lambda t: _with_settings(t, control_token), found))


def find_target(registry_url: str, instance_id: str) -> Target:
    """The registered instance ``instance_id``; TargetError when unknown or not loopback."""
    try:
        raw = fetch_instances(registry_url)
    except RegistryUnavailableError as err:
        raise TargetError(f"no demo to control: {err}") from err
    for item in raw:
        if str(item.get("instance_id", "")) == instance_id:
            url = str(item.get("url", ""))
            why = is_loopback_url(url)
            if why is not None:
                raise TargetError(f"instance {instance_id[:100]!r} is refused: {why}")
            return Target(str(item.get("service", "")), instance_id, url, item.get("healthy") is True)
    raise TargetError(f"instance {instance_id[:100]!r} is not in the registry")


def parse_changes(form: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from a form: ``error_rate`` in percent (0-100), ``latency_ms`` and
    ``jitter_ms`` (each request's latency is latency_ms plus or minus up to jitter_ms) 0-60000,
    switches as on/true/1 or off/false/0. Only the keys present are returned. Raises
    ValueError naming the bad value."""
    changes: dict[str, Any] = {}
    unknown = [k for k in form if k not in SETTINGS and k not in ("csrf_token", "instance_id")]
    if unknown:
        raise ValueError(f"unknown setting {str(unknown[0])[:64]!r}; known: {', '.join(SETTINGS)}")
    if "error_rate" in form:
        rate = _number(form["error_rate"], "error_rate")
        if not 0 <= rate <= 100:
            raise ValueError(f"error_rate must be between 0 and 100 %, got {rate:g}")
        changes["error_rate"] = rate / 100
    for key in ("latency_ms", "jitter_ms"):
        if key in form:
            changes[key] = _milliseconds(form[key], key)
    for key in FLAGS:
        if key in form:
            changes[key] = _flag(form[key], key)
    return changes


def apply(target: Target, control_token: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """POST ``changes`` to the target's /control; return its settings afterwards."""
    if not control_token:
        raise ControlError("no control token: start the services with `spyglass demo`")
    try:
        response = requests.post(
            f"{target.url}/control",
            json=dict(changes),
            headers={CONTROL_TOKEN_HEADER: control_token},
            timeout=CONTROL_TIMEOUT_S,
        )
    except requests.RequestException as err:
        raise ControlError(f"{target.instance_id} could not be reached: {type(err).__name__}") from err
    if response.status_code != 200:
        raise ControlError(f"{target.instance_id} refused the change: {response.status_code} {response.text[:200]}")
    return response.json()


def reset_all(registry_url: str, control_token: str) -> list[str]:
    """Clear every fault of every loopback instance; return the instance ids cleared."""
    cleared = []
    for target in list_targets(registry_url, control_token):
        apply(target, control_token, CLEAR)
        cleared.append(target.instance_id)
    return cleared


def _with_settings(target: Target, control_token: str) -> Target:
    try:
        response = requests.get(
            f"{target.url}/control", headers={CONTROL_TOKEN_HEADER: control_token}, timeout=CONTROL_TIMEOUT_S
        )
    except requests.RequestException as err:
        return Target(**{**target.__dict__, "problem": f"unreachable: {type(err).__name__}"})
    if response.status_code != 200:
        return Target(**{**target.__dict__, "problem": f"/control answered {response.status_code}"})
    return Target(**{**target.__dict__, "settings": response.json()})


def _number(raw: Any, name: str) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{name} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {str(raw)[:64]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number")
    return value


def _milliseconds(raw: Any, name: str) -> int:
    value = _number(raw, name)
    if not 0 <= value <= MAX_LATENCY_MS or value != int(value):
        raise ValueError(f"{name} must be a whole number from 0 to {MAX_LATENCY_MS}, got {value:g}")
    return int(value)


def _flag(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no", ""):
        return False
    raise ValueError(f"{name} must be true or false, got {text[:64]!r}")
