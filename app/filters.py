"""Jinja filters: nanosecond times and durations as people read them."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask


def format_time(ns: int) -> str:
    """Nanoseconds since the epoch as ``YYYY-MM-DD HH:MM:SS.mmm`` UTC."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def format_duration(ns: int) -> str:
    """A duration in the largest unit that keeps it readable: 840µs, 12.3ms, 1.52s, 3m05s."""
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.0f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.3g}ms"
    if ns < 60_000_000_000:
        return f"{ns / 1_000_000_000:.3g}s"
    minutes, seconds = divmod(ns // 1_000_000_000, 60)
    return f"{minutes}m{seconds:02d}s"


def format_offset(ns: int) -> str:
    """A signed offset from a start, as ``+12.3ms`` or ``-840µs``."""
    return ("+" if ns >= 0 else "-") + format_duration(abs(ns))


def register(app: Flask) -> None:
    """Install the filters."""
    app.add_template_filter(format_time, "time")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(format_offset, "offset")
