"""What a scenario drives: orders and requests through the gateway carrying the
experiment's baggage, fault settings it changes and instances it stops, all of which it
always restores (clears, and starts again).

A lab logs in at the gateway as ``LAB_USER`` when it connects (that login is set-up: it
carries no baggage and does not count against the limits).

Traffic is bounded: a lab refuses to send more than ``MAX_REQUESTS`` requests or to run
longer than ``MAX_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from app import demo_control, demo_processes
from app.demo_control import Target
from demo_services.protocol import AccessToken, LoginError, log_in

EXPERIMENT_BAGGAGE = "chaos.experiment_id"
MAX_REQUESTS = 200
MAX_SECONDS = 90.0
REQUEST_TIMEOUT_S = 15.0
LAB_USER = "ada"
ORDER = {"user_id": 1, "items": [{"product_id": 2, "quantity": 1}, {"product_id": 5, "quantity": 1}]}


class LabLimitError(RuntimeError):
    """A scenario tried to send more traffic, or run longer, than a lab allows."""


@dataclass
class Answer:
    """What the gateway answered to one request."""

    status: int
    body: dict[str, Any]
    retry_after: str | None = None


@dataclass
class Lab:
    """One experiment's access to the demo: the gateway, and the registry's instances."""

    experiment_id: str
    registry_url: str
    control_token: str
    launcher_url: str = ""
    gateway_url: str = ""
    token: AccessToken | None = None
    sent: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    started_again: list[str] = field(default_factory=list)
    _changed: dict[str, Target] = field(default_factory=dict)
    _stopped: dict[str, Target] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _began: float = field(default_factory=time.monotonic)

    def connect(self) -> None:
        """Find the gateway through the registry and log in; raise TargetError when there
        is no gateway, LoginError when it hands out no token."""
        targets = demo_control.list_targets(self.registry_url, self.control_token)
        gateways = [t for t in targets if t.service == "gateway"]
        if not gateways:
            raise demo_control.TargetError("the registry lists no gateway on loopback")
        self.gateway_url = gateways[0].url
        self.token = log_in(self.gateway_url, LAB_USER, timeout_s=REQUEST_TIMEOUT_S)

    def instances(self, service: str) -> list[Target]:
        """The registered loopback instances of ``service``."""
        return [t for t in demo_control.list_targets(self.registry_url, self.control_token) if t.service == service]

    def set_faults(self, target: Target, **changes: Any) -> None:
        """Change ``target``'s fault settings (restored by ``restore``)."""
        with self._lock:
            self._changed[target.instance_id] = target
            self.changes.append({"instance_id": target.instance_id, "service": target.service, **changes})
        demo_control.apply(target, self.control_token, changes)

    def stop(self, target: Target) -> None:
        """Stop ``target``'s process through the demo launcher (started again by
        ``restore``); returns once it has exited, and so left the registry."""
        with self._lock:
            self._stopped[target.instance_id] = target
            self.changes.append({"instance_id": target.instance_id, "service": target.service, "stopped": True})
        try:
            demo_processes.stop(self.launcher_url, self.control_token, target.instance_id)
        except demo_processes.ProcessError as err:
            raise demo_control.ControlError(f"{target.instance_id} could not be stopped: {err}") from err

    def restore(self) -> list[str]:
        """Start every instance this lab stopped (waiting until each is registered again),
        then clear the faults of every instance it changed; return what failed."""
        problems = []
        for instance_id in list(self._stopped):
            try:
                demo_processes.start(self.launcher_url, self.control_token, instance_id)
            except demo_processes.ProcessError as err:
                problems.append(f"{instance_id} could not be started again: {err}")
                continue
            del self._stopped[instance_id]
            self.started_again.append(instance_id)
        for target in self._changed.values():
            try:
                demo_control.apply(target, self.control_token, demo_control.CLEAR)
            except demo_control.ControlError as err:
                problems.append(str(err))
        return problems

    def request(self, method: str, path: str, json: Any = None) -> Answer:
        """One request through the gateway with the experiment's baggage."""
        with self._lock:
            if self.sent >= MAX_REQUESTS:
                raise LabLimitError(f"a scenario may send at most {MAX_REQUESTS} requests")
            if time.monotonic() - self._began > MAX_SECONDS:
                raise LabLimitError(f"a scenario may run at most {MAX_SECONDS:.0f} s")
            self.sent += 1
        if self.token is None or self.token.due():
            try:
                self.token = log_in(self.gateway_url, LAB_USER, timeout_s=REQUEST_TIMEOUT_S)
            except LoginError as err:
                return Answer(0, {"error": str(err)})
        headers = {"Authorization": self.token.header, "baggage": f"{EXPERIMENT_BAGGAGE}={self.experiment_id}"}
        try:
            response = requests.request(
                method, self.gateway_url + path, json=json, headers=headers, timeout=REQUEST_TIMEOUT_S
            )
        except requests.RequestException as err:
            return Answer(0, {"error": f"{type(err).__name__}: {err}"})
        try:
            body = response.json()
        except ValueError:
            body = {}
        return Answer(response.status_code, body if isinstance(body, dict) else {}, response.headers.get("Retry-After"))

    def order(self, **changes: Any) -> Answer:
        """Place one order (the usual basket, with ``changes`` to the body)."""
        return self.request("POST", "/api/orders", {**ORDER, **changes})

    def notified(self, target: Target, order_id: str) -> bool:
        """Whether the notifications instance ``target`` has written a notification for
        ``order_id`` (only to know when to stop waiting; the verdict comes from spans)."""
        try:
            response = requests.get(f"{target.url}/notifications", params={"order_id": order_id}, timeout=2)
            return response.status_code == 200 and bool(response.json().get("notifications"))
        except (requests.RequestException, ValueError):
            return False

    def together(self, count: int, send: Any) -> list[Answer]:
        """Call ``send()`` ``count`` times at once; return the answers."""
        with ThreadPoolExecutor(max_workers=min(count, 32)) as pool:
            return list(pool.map(lambda _i: send(), range(count)))

    def remaining_s(self) -> float:
        """Seconds left before the lab's time limit."""
        return MAX_SECONDS - (time.monotonic() - self._began)
