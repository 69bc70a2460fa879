"""URL converters that write any value into exactly one path segment.

Werkzeug's own converters leave ``/`` as it is when ``url_for`` builds a URL, so a saga
whose id is ``../../api/services`` would link to ``/sagas/../../api/services``, which a
browser resolves to ``/api/services``. Ours percent-encode everything but unreserved
characters (``quote(value, safe="")``): the id becomes ``..%2F..%2Fapi%2Fservices``, one
segment. Matching is unchanged: the server decodes ``%2F`` before routing, so a value that
may hold a slash is routed with ``<path:...>``, which matches it whole.

A segment cannot carry every value: ``.`` and ``..`` (also written ``%2E``) are dot
segments a browser removes, and a leading ``/`` would make an empty segment.
:func:`fits_in_path` tells which values can; links put the others in the query string.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Flask
from werkzeug.routing import PathConverter, UnicodeConverter


def path_segment(value: object) -> str:
    """``value`` percent-encoded as one path segment (``/`` included)."""
    return quote(str(value), safe="")


def fits_in_path(value: str) -> bool:
    """Whether ``value`` survives as a path segment: not empty, not a dot segment, no leading ``/``."""
    return value not in ("", ".", "..") and not value.startswith("/")


class SegmentConverter(UnicodeConverter):
    """The default converter (one segment), building URLs with every ``/`` encoded."""

    def to_url(self, value: object) -> str:
        return path_segment(value)


class SlashedSegmentConverter(PathConverter):
    """``<path:...>``: matches a value that holds slashes; builds it as one encoded segment."""

    def to_url(self, value: object) -> str:
        return path_segment(value)


def register(app: Flask) -> None:
    """Make these the app's ``default``, ``string`` and ``path`` converters."""
    app.url_map.converters["default"] = SegmentConverter
    app.url_map.converters["string"] = SegmentConverter
    app.url_map.converters["path"] = SlashedSegmentConverter
