"""Optional bearer-token auth (SPYGLASS_AUTH_TOKEN): unset means no auth, as on loopback.

When set, the JSON API and the pages need ``Authorization: Bearer <token>``; a browser
can instead open any page once with ``?token=<token>``, which stores it in an HttpOnly
cookie. /health and static files stay open so probes and stylesheets work.
"""

from __future__ import annotations

import hmac

from flask import Flask, Response, g, request
from werkzeug.exceptions import Unauthorized

COOKIE = "spyglass_token"
_OPEN_PREFIXES = ("/health", "/static/", "/v1/traces")  # the receiver checks the token itself


def register(app: Flask, token: str) -> None:
    """Guard every request of ``app`` with ``token``, when it is not empty."""
    if not token:
        return

    @app.before_request
    def _check() -> None:
        if request.path.startswith(_OPEN_PREFIXES):
            return
        offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        offered = offered or request.args.get("token", "") or request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(offered.encode(), token.encode()):
            raise Unauthorized(
                "a bearer token is required: send Authorization: Bearer <token>, or open a page with ?token=<token>"
            )
        g.spyglass_set_cookie = request.args.get("token") == token

    @app.after_request
    def _remember(response: Response) -> Response:
        if g.get("spyglass_set_cookie"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response
