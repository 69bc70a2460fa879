"""Parsers for query parameters; each raises BadRequest naming the field and the value."""

from __future__ import annotations

import json
import re
import shlex

from werkzeug.exceptions import BadRequest

from collectors.store import MAX_QUERY_LIMIT

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_HEX = re.compile(r"[0-9a-fA-F]{1,32}")


def parse_duration(name: str, raw: str | None) -> int | None:
    """A Go-style duration (``250ms``, ``1.5s``, ``1m30s``) in nanoseconds, or None if empty."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise BadRequest(f"{name} must be a duration such as 250ms, 1.5s or 2m, got {raw!r}")
        total += float(match.group(1)) * _UNITS_NS[match.group(2)]
        pos = match.end()
    if total > 2**62:
        raise BadRequest(f"{name} is too large, got {raw!r}")
    return int(total)


def parse_int(
    name: str, raw: str | None, *, default: int | None = None, low: int = 0, high: int = 2**63 - 1
) -> int | None:
    """An integer within [low, high], or ``default`` when absent."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {raw!r}")
    return value


def parse_limit(raw: str | None, default: int = 20) -> int:
    """A result limit: a positive integer, capped at the store's maximum."""
    value = parse_int("limit", raw, default=default, low=0, high=2**31)
    assert value is not None
    if value == 0:
        return default
    return min(value, MAX_QUERY_LIMIT)


def parse_trace_id(raw: str) -> str:
    """A trace id of 1 to 32 hex digits, left-padded to 32 lowercase (Jaeger accepts 64-bit ids)."""
    if not _HEX.fullmatch(raw or ""):
        raise BadRequest(f"trace id must be 1 to 32 hexadecimal characters, got {raw[:64]!r}")
    value = raw.lower().rjust(32, "0")
    if value == "0" * 32:
        raise BadRequest("trace id must not be all zeros")
    return value


def parse_json_tags(raw: str | None) -> dict[str, str]:
    """Jaeger's ``tags`` parameter: a JSON object of string keys to scalar values."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BadRequest(
            f'tags must be a JSON object such as {{"http.status_code":"500"}}, got {raw[:100]!r}'
        ) from None
    if not isinstance(doc, dict):
        raise BadRequest(f"tags must be a JSON object, got {raw[:100]!r}")
    out = {}
    for key, value in doc.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[key] = str(value)
        else:
            raise BadRequest(f"tag {key!r} must have a string, number or boolean value")
    return out


def parse_logfmt_tags(raw: str | None) -> dict[str, str]:
    """Tags written as logfmt: ``http.status_code=500 error=true name="a b"``."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        words = shlex.split(raw)
    except ValueError as err:
        raise BadRequest(f"tags must be key=value pairs separated by spaces: {err}") from None
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise BadRequest(f"tags must be key=value pairs separated by spaces, got {word!r}")
        out[key] = value
    return out
