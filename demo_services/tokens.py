"""Signed access tokens (JWTs through PyJWT): issued by users, verified by the gateway.

HS256 with one random key per demo run: the launcher generates it and hands it to these
two processes only, in their environment; it is never printed, logged or written to disk.
A shared key suits the demo because the issuer and the only verifier are started by the
same launcher on one machine; with verifiers outside that trust boundary an asymmetric
algorithm (RS256, ES256) with published public keys would be the choice, so that a
verifier cannot mint tokens.

A token carries ``sub`` (the user id), ``aud`` (the gateway's audience), ``iat`` and
``exp``. Verification checks the signature first, then that every claim is present, then
expiry and audience; a refusal names one reason a client can act on.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import jwt

from demo_services.protocol import JWT_KEY_VARIABLE

ALGORITHM = "HS256"
AUDIENCE = "spyglass-demo-gateway"
TOKEN_TTL_S = 900
REQUIRED_CLAIMS = ("sub", "aud", "exp", "iat")

MISSING = "missing"
MALFORMED = "malformed"
BAD_SIGNATURE = "bad signature"
EXPIRED = "expired"
WRONG_AUDIENCE = "wrong audience"
NOT_YET_VALID = "not yet valid"


class TokenRefused(Exception):
    """A bearer token the gateway does not accept; ``reason`` is one of the constants above."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who a verified token speaks for."""

    user_id: str
    expires_at: int


def issue(key: str, user_id: int | str, *, ttl_s: int = TOKEN_TTL_S, now: float | None = None) -> str:
    """Return a signed token for ``user_id`` valid for ``ttl_s`` seconds from ``now``."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": str(user_id), "aud": AUDIENCE, "iat": issued, "exp": issued + ttl_s}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify(authorization: str | None, key: str) -> Identity:
    """Check an ``Authorization`` header value; return the identity or raise ``TokenRefused``."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenRefused(MISSING, "a bearer token is required: log in at /api/login")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError as err:
        raise TokenRefused(EXPIRED, "the token has expired: log in again") from err
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as err:
        raise TokenRefused(BAD_SIGNATURE, "the token's signature does not verify") from err
    except jwt.InvalidAudienceError as err:
        raise TokenRefused(WRONG_AUDIENCE, f"the token is not meant for {AUDIENCE}") from err
    except jwt.MissingRequiredClaimError as err:
        if err.claim == "aud":
            raise TokenRefused(WRONG_AUDIENCE, f"the token names no audience; {AUDIENCE} is required") from err
        raise TokenRefused(MALFORMED, f"the token has no {err.claim!r} claim") from err
    except jwt.ImmatureSignatureError as err:
        raise TokenRefused(NOT_YET_VALID, "the token is not valid yet") from err
    except jwt.InvalidTokenError as err:
        raise TokenRefused(MALFORMED, f"the token cannot be read: {err}") from err
    return Identity(claims["sub"], int(claims["exp"]))


def signing_key(value: str, service: str) -> str:
    """Return the demo's token key, or stop the process with one line when it is not set."""
    if not value:
        print(f"{service}: {JWT_KEY_VARIABLE} is not set (the launcher generates it)", file=sys.stderr)
        raise SystemExit(2)
    return value
