"""Security headers on every response the app gives: pages, fragments, JSON, OTLP, static files.

The Content-Security-Policy lets scripts come only from our own static files: no inline
script, no inline event handler (``onerror=``), no ``eval``, so markup that ever slipped
through escaping could not run. Inline ``style`` attributes stay allowed
(``style-src-attr 'unsafe-inline'``): the waterfall, timelines and bars place their
boxes with computed percentages in ``style``; a style attribute runs no script, and
``<style>`` elements and stylesheets from elsewhere remain refused. ``frame-ancestors
'none'`` (and ``X-Frame-Options`` for older browsers) keeps other sites from framing the
dashboard; ``Referrer-Policy: same-origin`` keeps a page's URL from reaching other sites.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
_NAMES = {name.lower() for name, _ in SECURITY_HEADERS}


def with_security_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with ours in place of any of the same names."""
    return [(k, v) for k, v in headers if k.lower() not in _NAMES] + list(SECURITY_HEADERS)


class SecurityHeaders:
    """WSGI middleware: adds :data:`SECURITY_HEADERS` to every response of ``app``.

    As middleware rather than an ``after_request`` hook, so responses Flask's hooks never
    see (a redirect from routing, an error raised while finishing a response) get them too.
    """

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, with_security_headers(headers), exc_info)

        return self.app(environ, start)
