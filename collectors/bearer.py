"""Bearer tokens (RFC 6750): reading ``Authorization`` and comparing in constant time.

One place for the rule every entrance follows when ``SPYGLASS_AUTH_TOKEN`` is set: the
OTLP/HTTP receiver, the OTLP/gRPC receiver (its ``authorization`` metadata) and the
dashboard with its JSON API. The scheme is case-insensitive (``bearer x`` is as good as
``Bearer x``); a value without a scheme (``Authorization: secret``) is not a bearer
token and is refused.
"""

from __future__ import annotations

import hmac

SCHEME = "bearer"
CHALLENGE = 'Bearer realm="spyglass"'
"""The ``WWW-Authenticate`` value a 401 carries."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value; None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != SCHEME or not token:
        return None
    return token


def token_matches(offered: str | None, expected: str) -> bool:
    """Whether ``offered`` is ``expected``, compared in constant time (bytes, so any text works)."""
    if offered is None:
        return False
    return hmac.compare_digest(offered.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def authorized(authorization: str | None, expected: str) -> bool:
    """Whether an ``Authorization`` value carries ``expected`` as a bearer token.

    An empty ``expected`` means auth is off: everything is authorized.
    """
    if not expected:
        return True
    return token_matches(bearer_token(authorization), expected)
