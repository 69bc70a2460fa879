"""Optional bearer-token auth (SPYGLASS_AUTH_TOKEN): unset means no auth, as on loopback.

When set, the JSON API and the pages need ``Authorization: Bearer <token>`` (the scheme in
any case) or the session cookie. A browser logs in by opening any page once with
``?token=<token>``: the answer is a 303 to the same URL without the token, setting an
HttpOnly, SameSite=Lax cookie (Secure when the request came over HTTPS), so the token
stays out of the address bar, the history and every link made from the page. A refusal
is a 401 with ``WWW-Authenticate: Bearer``. /health and static files stay open so probes
and stylesheets work; the receiver checks the token itself.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from flask import Flask, Response, redirect, request
from werkzeug.exceptions import Unauthorized

from collectors.bearer import CHALLENGE, bearer_token, token_matches

COOKIE = "spyglass_token"
QUERY = "token"
_OPEN_PREFIXES = ("/health", "/static/", "/v1/traces", "/api/v2/spans")  # the receivers check the token themselves
_LOGIN_METHODS = ("GET", "HEAD")
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
"""Characters left as they are when the request's own path is written into Location:
its percent-escapes stay, so an encoded ``/`` in a name does not become a real one."""


def register(app: Flask, token: str) -> None:
    """Guard every request of ``app`` with ``token``, when it is not empty."""
    if not token:
        return

    @app.before_request
    def _check() -> Response | None:
        if request.path.startswith(_OPEN_PREFIXES):
            return None
        if QUERY in request.args and request.method in _LOGIN_METHODS:
            if not token_matches(request.args.get(QUERY), token):
                raise Unauthorized("the token in the address is wrong")
            return _log_in(token)
        if token_matches(bearer_token(request.headers.get("Authorization")), token):
            return None
        if "Authorization" not in request.headers and token_matches(request.cookies.get(COOKIE), token):
            return None
        raise Unauthorized(
            "a bearer token is required: send Authorization: Bearer <token>, or open a page with ?token=<token>"
        )

    @app.after_request
    def _challenge(response: Response) -> Response:
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = CHALLENGE
        return response


def _log_in(token: str) -> Response:
    """A 303 to the URL just asked for, without the token, setting the session cookie."""
    response = redirect(_url_without_token(), code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=request.is_secure, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def _url_without_token() -> str:
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    path = raw.split("?", 1)[0] if raw.startswith("/") else request.script_root + request.path
    # Never "//host" or "/\host": a browser reads either as another site.
    path = "/" + quote(path, safe=_PATH_SAFE).lstrip("/")
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != QUERY]
    return path + ("?" + urlencode(rest) if rest else "")
