"""Guards for the dashboard's state-changing requests (the chaos lab's POSTs).

A POST is accepted from a browser when it comes from this origin (``Origin``, or
``Referer`` when a browser sends no Origin) and carries the CSRF token the pages put in
their forms; from a script when it carries the demo's control token in
``X-Spyglass-Control-Token`` (a header a cross-site page cannot send without a CORS
preflight, which this server never grants). ``SPYGLASS_AUTH_TOKEN``, when set, is checked
before either by :mod:`app.auth`.

The CSRF token is an HMAC of a random key kept in the data directory (mode 0600), so every
worker process of one server agrees on it and it survives a restart of the server.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app, request
from werkzeug.exceptions import BadRequest, Forbidden

from demo_services.protocol import CONTROL_TOKEN_FILE, CONTROL_TOKEN_HEADER

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
KEY_FILE = "dashboard.key"
CONTROL_TOKEN_VARIABLE = "SPYGLASS_DEMO_CONTROL_TOKEN"


@dataclass(frozen=True)
class PostGuard:
    """The two secrets a POST is checked against; ``control_token`` is empty without a demo."""

    csrf_token: str
    control_token: str

    def check(self) -> str:
        """Refuse (403) a request that is neither a same-origin form with the CSRF token
        nor a script with the control token; return ``"browser"`` or ``"script"``."""
        sent_control = request.headers.get(CONTROL_TOKEN_HEADER)
        if sent_control is not None:
            if not self.control_token or not hmac.compare_digest(sent_control, self.control_token):
                raise Forbidden(f"wrong {CONTROL_TOKEN_HEADER}")
            if _origin() not in (None, _own_origin()):
                raise Forbidden("a cross-origin request is refused")
            return "script"
        origin = _origin()
        if origin is None:
            raise Forbidden("a POST from a browser must carry Origin (or Referer) of this dashboard")
        if origin != _own_origin():
            raise Forbidden(f"a cross-origin POST is refused (from {origin[:100]})")
        sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
        if not hmac.compare_digest(sent, self.csrf_token):
            raise Forbidden("the CSRF token is missing or wrong: reload the page and try again")
        return "browser"


def load_guard(data_dir: str, environ: dict[str, str] | None = None) -> PostGuard:
    """Read (creating once) the key in ``data_dir`` and the demo's control token: from the
    environment (the launcher passes it), else from ``<data_dir>/demo/control-token``. A
    token from the environment is kept in that file (mode 0600) for scripts."""
    environ = dict(os.environ) if environ is None else environ
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    key = _read_or_create(directory / KEY_FILE, secrets.token_hex(32))
    csrf = hmac.new(bytes.fromhex(key), b"spyglass-csrf", hashlib.sha256).hexdigest()
    token_path = directory / "demo" / CONTROL_TOKEN_FILE
    control = environ.get(CONTROL_TOKEN_VARIABLE, "").strip()
    if control:
        token_path.parent.mkdir(parents=True, exist_ok=True)
        _read_or_create(token_path, control, replace=True)
    else:
        control = read_control_token(data_dir)
    return PostGuard(csrf, control)


def read_control_token(data_dir: str) -> str:
    """The demo's control token kept in ``data_dir``, or "" when there is none."""
    try:
        return (Path(data_dir) / "demo" / CONTROL_TOKEN_FILE).read_text().strip()
    except OSError:
        return ""


def guard() -> PostGuard:
    """The app's guard."""
    return current_app.extensions["spyglass.post_guard"]


def client_address() -> str:
    """The address a request came from, for the record of what changed."""
    return request.remote_addr or "unknown"


def json_body() -> dict:
    """The request's JSON object body; 400 naming the problem otherwise."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    return body


def _read_or_create(path: Path, value: str, *, replace: bool = False) -> str:
    """Write ``value`` to ``path`` with mode 0600 unless it exists (``replace``: unless it
    already holds ``value``); return what the file holds. A temporary file is linked into
    place, so readers never see a half-written file and concurrent creators agree."""
    try:
        current = path.read_text().strip()
        if current and (not replace or current == value):
            return current
    except OSError:
        pass
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    try:
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text().strip()


def _origin() -> str | None:
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return origin.rstrip("/").lower()
    if origin == "null":
        return "null"
    referer = request.headers.get("Referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return None


def _own_origin() -> str:
    return request.host_url.rstrip("/").lower()
