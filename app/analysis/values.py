"""Attribute values as typed text for display (the template only prints the result)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from collectors.model import BYTES_MARKER

EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"


@dataclass(frozen=True, slots=True)
class TypedValue:
    """An attribute as shown: its key, OTLP type name and text."""

    key: str
    type: str
    text: str
    multiline: bool


def typed(key: str, value: Any) -> TypedValue:
    """Name the value's OTLP type and render it as text (JSON for arrays and maps)."""
    if isinstance(value, bool):
        kind, text = "bool", "true" if value else "false"
    elif isinstance(value, int):
        kind, text = "int", str(value)
    elif isinstance(value, float):
        kind, text = (
            "double",
            repr(value) if not math.isfinite(value) else f"{value:g}" if abs(value) < 1e15 else repr(value),
        )
    elif isinstance(value, str):
        kind, text = "string", value
    elif isinstance(value, dict) and set(value) == {BYTES_MARKER}:
        kind, text = "bytes", value[BYTES_MARKER]
    elif isinstance(value, dict):
        kind, text = "map", json.dumps(plain(value), ensure_ascii=False, indent=1)
    elif isinstance(value, list):
        kind, text = "array", json.dumps(plain(value), ensure_ascii=False)
    else:
        kind, text = "empty", ""
    return TypedValue(key, kind, text, "\n" in text)


def typed_attributes(attrs: dict[str, Any], *, skip: tuple[str, ...] = ()) -> list[TypedValue]:
    """Typed values of an attribute map, sorted by key."""
    return [typed(k, v) for k, v in sorted(attrs.items()) if k not in skip]


def plain(value: Any) -> Any:
    """An attribute value as plain JSON: bytes as their base64 text, NaN and infinities as text."""
    if isinstance(value, dict):
        if set(value) == {BYTES_MARKER}:
            return value[BYTES_MARKER]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value
