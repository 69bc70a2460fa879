"""Stopping and starting demo instances through the launcher's control endpoint.

The endpoint (``Settings.launcher_url``, served by ``spyglass demo``; see
:mod:`demo_services.process_control`) owns the processes: a stop ends the instance's
process, which leaves the registry, and the launcher does not restart it until it is
started again. The URL must be plain ``http`` on a loopback address, or nothing is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import requests

from app.demo_control import is_loopback_url
from demo_services.process_control import STOPPED
from demo_services.protocol import CONTROL_TOKEN_HEADER

LIST_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 15.0
START_TIMEOUT_S = 45.0
"""The launcher answers a start once the instance is healthy and registered (30 s at most)."""


class ProcessError(RuntimeError):
    """The launcher could not be asked, or refused: the message says why."""


@dataclass(frozen=True)
class InstanceProcess:
    """One instance as the launcher sees it."""

    instance_id: str
    service: str
    state: str


def states(launcher_url: str, control_token: str) -> dict[str, InstanceProcess]:
    """Every instance the launcher may stop or start, by id; ProcessError when there is no
    launcher to ask (the services were started some other way)."""
    response = _ask("GET", launcher_url, "/instances", control_token, LIST_TIMEOUT_S)
    try:
        listed = response.json()["instances"]
        found = [InstanceProcess(str(i["instance_id"]), str(i["service"]), str(i["state"])) for i in listed]
    except (ValueError, KeyError, TypeError) as err:
        raise ProcessError(f"the launcher at {launcher_url} answered something else than its instances") from err
    return {i.instance_id: i for i in found}


def stop(launcher_url: str, control_token: str, instance_id: str) -> None:
    """Stop the instance's process; returns once it has exited."""
    _ask("POST", launcher_url, f"/instances/{quote(instance_id, safe='')}/stop", control_token, STOP_TIMEOUT_S)


def start(launcher_url: str, control_token: str, instance_id: str) -> None:
    """Start a stopped instance; returns once it is healthy and registered again."""
    _ask("POST", launcher_url, f"/instances/{quote(instance_id, safe='')}/start", control_token, START_TIMEOUT_S)


def start_stopped(launcher_url: str, control_token: str) -> list[str]:
    """Start every instance stopped on purpose; return their ids (none without a launcher)."""
    try:
        stopped = [i for i in states(launcher_url, control_token).values() if i.state == STOPPED]
    except ProcessError:
        return []
    for instance in stopped:
        start(launcher_url, control_token, instance.instance_id)
    return [i.instance_id for i in stopped]


def _ask(method: str, launcher_url: str, path: str, control_token: str, timeout_s: float) -> requests.Response:
    why = is_loopback_url(launcher_url)
    if why is not None:
        raise ProcessError(f"the launcher URL is refused: {why}")
    if not control_token:
        raise ProcessError("no control token: start the services with `spyglass demo`")
    try:
        response = requests.request(
            method, launcher_url.rstrip("/") + path, headers={CONTROL_TOKEN_HEADER: control_token}, timeout=timeout_s
        )
    except requests.RequestException as err:
        raise ProcessError(f"the demo launcher at {launcher_url} could not be reached: {type(err).__name__}") from err
    if response.status_code != 200:
        try:
            message = str(response.json().get("error", ""))
        except ValueError:
            message = response.text
        raise ProcessError(f"the demo launcher refused: {response.status_code} {message[:200]}")
    return response
