"""What the OTLP decoders share: their errors and limits, the walker state of one decode
(text cleaning, truncation counts, resources), and the readers of single fields (ids,
integers, numbers, enums, lists, strings) that check a value and say where it is wrong.

:mod:`collectors.otlp` decodes protobuf, :mod:`collectors.otlp_json` the OTLP/JSON
mapping, :mod:`collectors.zipkin` Zipkin's JSON; they agree because they share these.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from collectors.model import DecodedBatch, Resource

SERVICE_NAME = "service.name"
UNKNOWN_SERVICE = "unknown_service"
_HEX = frozenset("0123456789abcdef")
_SURROGATES = re.compile("[\ud800-\udfff]")


class DecodeError(ValueError):
    """The request body cannot be read as an OTLP trace export request."""


class SpanError(ValueError):
    """One span is invalid; it is rejected and the others are kept."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-span bounds applied at ingest (all settings, documented in the README)."""

    max_attributes: int = 256
    max_value_length: int = 32768
    max_events: int = 512
    max_links: int = 512
    max_depth: int = 16


DEFAULT_LIMITS = Limits()


class SpanWalker:
    """Shared state of one decode: limits, warnings, and the resource cache. The protobuf
    and JSON walkers build on it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.batch = DecodedBatch()
        self.truncated = 0
        self._keys: dict[str, str] = {}

    def text(self, value: str) -> str:
        """Clean untrusted text: bound its length, drop NUL and lone surrogates."""
        if len(value) > self.limits.max_value_length:
            value = value[: self.limits.max_value_length]
            self.truncated += 1
        if not value.isascii():
            value = _SURROGATES.sub("\ufffd", value)
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL; keep it visible as U+FFFD.
            value = value.replace("\x00", "\ufffd")
        return value

    def resource(
        self, attrs: dict[str, Any], scope_name: str, scope_version: str, scope_attrs: dict[str, Any]
    ) -> Resource:
        service = attrs.get(SERVICE_NAME)
        if not isinstance(service, str) or not service:
            service = UNKNOWN_SERVICE
        return Resource(service, attrs, scope_name, scope_version, scope_attrs)

    def limit(self, items: list, limit: int) -> tuple[list, int]:
        if len(items) > limit:
            self.truncated += 1
            return items[:limit], len(items) - limit
        return items, 0

    def repeated(self, items: Any, name: str, dropped: int, limit: int, build: Any, where: str) -> tuple[tuple, int]:
        """A span's events or links (protobuf or JSON), built within the limit, each told
        where it is; and the span's dropped count plus those cut off."""
        if not items:
            return (), dropped
        kept, cut = self.limit(list(items), limit)
        return tuple(build(item, f"{where}.{name}[{i}]") for i, item in enumerate(kept)), dropped + cut


# -- single fields ---------------------------------------------------------------------


def pb_id(raw: bytes, size: int, field: str) -> str:
    if len(raw) != size:
        raise SpanError(f"{field} must be {size} bytes, got {len(raw)}")
    if not any(raw):
        raise SpanError(f"{field} must not be all zeros")
    return raw.hex()


def json_id(raw: Any, size: int, field: str) -> str:
    if not isinstance(raw, str):
        raise SpanError(f"{field} must be a hex string of {size} characters")
    value = raw.lower()
    if len(value) != size or not _HEX.issuperset(value):
        raise SpanError(f"{field} must be {size} hex characters, got {raw[:40]!r}")
    if value.count("0") == size:
        raise SpanError(f"{field} must not be all zeros")
    return value


def check_times(start: int, end: int) -> None:
    if start <= 0:
        raise SpanError("startTimeUnixNano is missing")
    if end < start:
        raise SpanError(f"endTimeUnixNano ({end}) is before startTimeUnixNano ({start})")


def as_int(x: Any, field: str) -> int:
    if isinstance(x, bool):
        raise SpanError(f"{field}: expected an integer, got {x!r}")
    if isinstance(x, int):
        value = x
    elif isinstance(x, str):
        try:
            value = int(x, 10)
        except ValueError as err:
            raise SpanError(f"{field}: expected an integer, got {x[:40]!r}") from err
    elif isinstance(x, float) and x.is_integer():
        value = int(x)
    else:
        raise SpanError(f"{field}: expected an integer, got {str(x)[:40]!r}")
    if not -(2**63) <= value < 2**64:
        raise SpanError(f"{field}: {value} does not fit in 64 bits")
    return value


def json_uint(x: Any, field: str) -> int:
    """An absent or unsigned 64-bit integer field: decimal text (the OTLP/JSON form) inline,
    anything else through :func:`_int`'s checks."""
    if not x:
        return 0
    if type(x) is str and len(x) < 20 and x.isascii() and x.isdigit():
        return int(x)
    return as_int(x, field)


def as_double(x: Any, field: str) -> float:
    if isinstance(x, bool):
        raise SpanError(f"{field}: expected a number")
    if isinstance(x, (int, float)):
        return float(x)
    if x in ("NaN", "Infinity", "-Infinity"):
        return float(x.replace("Infinity", "inf"))
    if isinstance(x, str):
        try:
            value = float(x)
        except ValueError as err:
            raise SpanError(f"{field}: expected a number, got {x[:40]!r}") from err
        if math.isfinite(value):
            return value
    raise SpanError(f"{field}: expected a number, got {str(x)[:40]!r}")


def as_enum(x: Any, names: dict[str, int], field: str) -> int:
    if isinstance(x, str) and x in names:
        return names[x]
    value = as_int(x, field)
    if not 0 <= value < 2**31:
        raise SpanError(f"{field}: {value} is not a valid enum value")
    return value


def get_field(doc: dict, *names: str) -> Any:
    for name in names:
        if name in doc:
            return doc[name]
    return None


def json_list(doc: dict, *names: str, where: str) -> list:
    value = get_field(doc, *names)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"{where}.{names[0]}: expected an array")
    return value


def span_list(doc: dict, *names: str) -> list:
    value = get_field(doc, *names)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpanError(f"{names[0]}: expected an array")
    return value


def str_field(doc: dict, name: str, where: str) -> str:
    value = doc.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"{where}.{name}: expected a string")
    return value


def span_str(doc: dict, *names: str) -> str:
    value = get_field(doc, *names)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpanError(f"{names[0]}: expected a string")
    return value


def require_object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: expected an object")


def one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:200]
