"""The time window of the pattern views: ``window`` (a duration) ending ``ago`` minutes back."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import request

from app.params import parse_duration, parse_int

DEFAULT_WINDOW_NS = 15 * 60 * 1_000_000_000
MAX_WINDOW_NS = 7 * 24 * 3600 * 1_000_000_000
MAX_AGO_MIN = 7 * 24 * 60
WINDOW_CHOICES = ("5m", "15m", "1h", "6h", "24h")


@dataclass(frozen=True, slots=True)
class Window:
    """[start_ns, end_ns] plus the parameters that chose it, for links and forms."""

    start_ns: int
    end_ns: int
    window: str
    ago: int

    @property
    def length_ns(self) -> int:
        """The window's length."""
        return self.end_ns - self.start_ns

    @property
    def live(self) -> bool:
        """Whether the window ends now (the page refreshes itself)."""
        return self.ago == 0

    def args(self) -> dict[str, str | int]:
        """Query arguments that reproduce this window."""
        return {"window": self.window, "ago": self.ago}


def parse_window(now_ns: int | None = None) -> Window:
    """The window from the request's ``window`` and ``ago`` arguments; BadRequest if invalid."""
    from werkzeug.exceptions import BadRequest

    raw = request.args.get("window") or "15m"
    length = parse_duration("window", raw) or DEFAULT_WINDOW_NS
    if length > MAX_WINDOW_NS:
        raise BadRequest(f"window must be at most 7 days, got {raw!r}")
    ago = parse_int("ago", request.args.get("ago"), default=0, low=0, high=MAX_AGO_MIN) or 0
    end = (now_ns or time.time_ns()) - ago * 60 * 1_000_000_000
    return Window(end - length, end, raw, ago)
