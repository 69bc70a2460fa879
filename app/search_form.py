"""The trace search form: filters as typed, checked into a store query, or messages per field.

The form keeps every value as text, so a page with a bad value shows what was sent next to
the message naming the field; ``params()`` gives the query parameters that reproduce it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest

from app.params import parse_datetime, parse_duration, parse_limit, parse_logfmt_tags, parse_name
from collectors.store import SORT_ORDERS, TraceQuery

RANGES = {"15m": 15 * 60, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600, "custom": 0}
RANGE_LABELS = {
    "15m": "Last 15 minutes",
    "1h": "Last hour",
    "6h": "Last 6 hours",
    "24h": "Last 24 hours",
    "custom": "Custom range",
}
STATUSES = ("any", "error", "ok")
SORT_LABELS = {"recent": "Most recent", "slowest": "Slowest", "spans": "Most spans", "errors": "Most errors"}
DEFAULT_LIMIT = 20


@dataclass
class SearchForm:
    """The search filters as typed (kept as text so the form shows what was sent)."""

    service: str = ""
    operation: str = ""
    tags: str = ""
    status: str = "any"
    min_duration: str = ""
    max_duration: str = ""
    range: str = "1h"
    start: str = ""
    end: str = ""
    limit: str = str(DEFAULT_LIMIT)
    sort: str = "recent"
    live: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: MultiDict) -> SearchForm:
        """Read the form from query parameters, defaults for what is missing."""
        form = cls()
        for name in (
            "service",
            "operation",
            "tags",
            "status",
            "min_duration",
            "max_duration",
            "range",
            "start",
            "end",
            "limit",
            "sort",
        ):
            value = args.get(name)
            if value is not None:
                setattr(form, name, value.strip())
        form.live = args.get("live") in ("1", "on", "true")
        return form

    def query(self, now_ns: int) -> TraceQuery | None:
        """The store query, or None after recording a message per bad field in ``errors``."""
        values: dict[str, Any] = {}
        checks = {
            "service": lambda: parse_name("service", self.service),
            "operation": lambda: parse_name("operation", self.operation),
            "tags": lambda: parse_logfmt_tags(self.tags),
            "min_duration": lambda: parse_duration("min duration", self.min_duration),
            "max_duration": lambda: parse_duration("max duration", self.max_duration),
            "limit": lambda: parse_limit(self.limit, DEFAULT_LIMIT),
            "range": lambda: self._window(now_ns),
            "status": lambda: _choice("status", self.status, STATUSES),
            "sort": lambda: _choice("sort", self.sort, SORT_ORDERS),
        }
        for name, check in checks.items():
            try:
                values[name] = check()
            except BadRequest as err:
                self.errors[name] = str(err.description)
        lo, hi = values.get("min_duration"), values.get("max_duration")
        if lo is not None and hi is not None and lo > hi:
            self.errors["max_duration"] = f"max duration must not be below min duration, got {self.max_duration!r}"
        if self.errors:
            return None
        start_ns, end_ns = values["range"]
        return TraceQuery(
            start_ns=start_ns,
            end_ns=end_ns,
            service=values["service"],
            operation=values["operation"],
            tags=values["tags"],
            min_duration_ns=lo,
            max_duration_ns=hi,
            status=self.status,
            limit=values["limit"],
            sort=self.sort,
        )

    def _window(self, now_ns: int) -> tuple[int, int]:
        if self.range not in RANGES:
            raise BadRequest(f"range must be one of {', '.join(RANGES)}, got {self.range!r}")
        if self.range != "custom":
            return now_ns - RANGES[self.range] * 1_000_000_000, now_ns
        start = parse_datetime("start", self.start)
        end = parse_datetime("end", self.end) if self.end else now_ns
        if start is None:
            raise BadRequest("start is needed for a custom range, as 2024-05-01T13:45 (UTC)")
        if end < start:
            raise BadRequest(f"range end {self.end!r} is before its start {self.start!r}")
        return start, end

    def params(self, **overrides: Any) -> dict[str, Any]:
        """Query parameters that reproduce this search (for links)."""
        out = {
            k: v
            for k, v in {
                "service": self.service,
                "operation": self.operation,
                "tags": self.tags,
                "status": self.status,
                "min_duration": self.min_duration,
                "max_duration": self.max_duration,
                "range": self.range,
                "start": self.start if self.range == "custom" else "",
                "end": self.end if self.range == "custom" else "",
                "limit": self.limit,
                "sort": self.sort,
                "live": "1" if self.live else "",
            }.items()
            if v
        }
        out.update(overrides)
        return out


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}, got {value[:40]!r}")
    return value
