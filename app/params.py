"""Parsers for query parameters; each raises BadRequest naming the field and the value."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime, timedelta

from werkzeug.exceptions import BadRequest

from collectors.model import RUNNING, SAGA_OUTCOMES
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
_SHOWN = 60
"""Characters of a bad value quoted back in a message."""

MAX_TIME_NS = 2**63 - 1
"""The latest time the store can hold: nanoseconds since the epoch in a signed 64-bit
integer, 2262-04-11T23:47:16Z. Times are refused outside [0, MAX_TIME_NS]."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = _EPOCH + timedelta(microseconds=MAX_TIME_NS // 1000)


def _shown(raw: str) -> str:
    """A bad value as quoted in a message: its repr, cut short when long."""
    return repr(raw[:_SHOWN]) + ("..." if len(raw) > _SHOWN else "")


def parse_duration(name: str, raw: str | None) -> int | None:
    """A Go-style duration (``250ms``, ``1.5s``, ``1m30s``) in nanoseconds, or None if empty."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise BadRequest(f"{name} must be a duration such as 250ms, 1.5s or 2m, got {_shown(raw)}")
        total += float(match.group(1)) * _UNITS_NS[match.group(2)]
        pos = match.end()
    if total > 2**62:
        raise BadRequest(f"{name} is too large, got {_shown(raw)}")
    return int(total)


def parse_int(
    name: str, raw: str | None, *, default: int | None = None, low: int = 0, high: int = 2**63 - 1
) -> int | None:
    """An integer within [low, high], or ``default`` when absent."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:  # also a number of more than 4,300 digits
        value = None
    if value is None or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {_shown(raw)}")
    return value


def parse_epoch(name: str, raw: str | None, *, unit_ns: int, unit: str, default_ns: int) -> int:
    """A time since the epoch counted in ``unit`` (``unit_ns`` nanoseconds each), as
    nanoseconds; ``default_ns`` when absent. Refused outside what the store can hold."""
    high = MAX_TIME_NS // unit_ns
    try:
        value = parse_int(name, raw, low=0, high=high)
    except BadRequest:
        raise BadRequest(
            f"{name} must be an integer count of {unit} since the epoch, from 0 to {high} (2262-04-11), "
            f"got {_shown(raw or '')}"
        ) from None
    return default_ns if value is None else value * unit_ns


def parse_datetime(name: str, raw: str | None) -> int | None:
    """An ISO date and time (UTC unless it names an offset) as nanoseconds since the epoch,
    or None if empty. Refused outside 1970-01-01 to 2262-04-11, the times the store can hold."""
    if raw is None or raw.strip() == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest(f"{name} must be a date and time such as 2024-05-01T13:45 (UTC), got {_shown(raw)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not _EPOCH <= moment <= _LATEST:
        raise BadRequest(
            f"{name} must be between 1970-01-01T00:00 and {_LATEST:%Y-%m-%dT%H:%M} (UTC), got {_shown(raw)}"
        )
    # In integers: a float timestamp would lose precision.
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def parse_name(name: str, raw: str | None) -> str | None:
    """A service, operation, saga or peer name to look up, or None if empty.

    A name holding NUL (U+0000) is refused: no stored name has one, since ingest replaces
    NUL with U+FFFD (PostgreSQL text cannot hold it), so the question cannot be asked.
    """
    if not raw:
        return None
    if "\x00" in raw:
        raise BadRequest(f"{name} must not contain a NUL character (U+0000), got {_shown(raw)}")
    return raw


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
        raise BadRequest(f"trace id must be 1 to 32 hexadecimal characters, got {_shown(raw or '')}")
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
    except RecursionError:
        raise BadRequest("tags must be a flat JSON object; this one nests too deeply to read") from None
    except ValueError:
        raise BadRequest(
            f'tags must be a JSON object such as {{"http.response.status_code":"500"}}, got {_shown(raw)}'
        ) from None
    if not isinstance(doc, dict):
        raise BadRequest(f"tags must be a JSON object, got {_shown(raw)}")
    out = {}
    for key, value in doc.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[key] = str(value)
        else:
            raise BadRequest(f"tag {_shown(key)} must have a string, number or boolean value")
    return out


def parse_logfmt_tags(raw: str | None) -> dict[str, str]:
    """Tags written as logfmt: ``http.response.status_code=500 error=true name="a b"``."""
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
            raise BadRequest(f"tags must be key=value pairs separated by spaces, got {_shown(word)}")
        out[key] = value
    return out


SAGA_OUTCOME_FILTERS = (*SAGA_OUTCOMES, RUNNING)
"""What a saga list can be filtered by: an outcome, or still running."""


def parse_outcome(raw: str | None) -> str | None:
    """An outcome filter: empty, or one of completed, compensated, failed, running."""
    if not raw:
        return None
    if raw not in SAGA_OUTCOME_FILTERS:
        raise BadRequest(f"outcome must be one of {', '.join(SAGA_OUTCOME_FILTERS)}, got {raw[:64]!r}")
    return raw
