"""Names shared by the launcher, the services and the scripts that drive the demo, kept
free of heavy imports, and the one call every client of the gateway makes first: log in.

The launcher runs inside ``spyglass demo`` and stays small by importing only this module
and ``requests`` from the demo package.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

CONTROL_TOKEN_HEADER = "X-Spyglass-Control-Token"

CONTROL_TOKEN_FILE = "control-token"
"""The control token's file in the demo's directory (``<data dir>/demo/``), mode 0600."""

OUT_OF_SERVICE_HEADER = "X-Spyglass-Out-Of-Service"
"""Set on the 503 of a stopped instance: it handled nothing, so callers may try another."""

USER_ID_HEADER = "X-User-Id"
"""The caller's user id, set by the gateway from a verified token on every call it forwards."""

ENDUSER_ID = "enduser.id"
"""The span attribute that names the caller (OpenTelemetry's general attribute)."""

JWT_KEY_VARIABLE = "SPYGLASS_DEMO_JWT_KEY"
"""Where users and the gateway find the key of the run's access tokens (the launcher's)."""

LOGIN_PATH = "/api/login"
"""The gateway's login route (no token needed): ``{"username", "password"}`` in, a token out."""

DEMO_PASSWORD = "spyglass-demo"
"""Every demo user's password (the users are ada, alan, grace, edsger and barbara)."""

RENEW_BEFORE_S = 30.0


class LoginError(RuntimeError):
    """The gateway did not hand out a token."""


@dataclass(frozen=True)
class AccessToken:
    """A token from the gateway's login, and when (monotonic seconds) to log in again."""

    value: str
    renew_at: float

    @property
    def header(self) -> str:
        """The ``Authorization`` header value that carries it."""
        return f"Bearer {self.value}"

    def due(self) -> bool:
        """Whether it is about to expire (or has)."""
        return time.monotonic() >= self.renew_at


def log_in(gateway_url: str, username: str, password: str = DEMO_PASSWORD, *, timeout_s: float = 10.0) -> AccessToken:
    """Log ``username`` in at the gateway; raise ``LoginError`` with the reason when refused."""
    try:
        response = requests.post(
            f"{gateway_url}{LOGIN_PATH}", json={"username": username, "password": password}, timeout=timeout_s
        )
    except requests.RequestException as err:
        raise LoginError(f"cannot log in at {gateway_url}: {err}") from err
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body.get("access_token"), str):
        raise LoginError(f"login as {username} refused ({response.status_code}): {body.get('error', response.text)}")
    lifetime = float(body.get("expires_in", 0))
    return AccessToken(body["access_token"], time.monotonic() + max(lifetime - RENEW_BEFORE_S, 0.0))
