"""Tiny htmx helpers: one URL renders a whole page or just its fragment."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

MESSAGE_AREA = "#messages"
"""The element in base.html where error fragments are swapped."""


def is_htmx() -> bool:
    """Whether the request came from htmx (and wants a fragment, not a page)."""
    return bool(getattr(request, "htmx", False)) and not request.htmx.history_restore_request


def render_page_or_fragment(page: str, fragment: str, **context: Any) -> str:
    """Render ``fragment`` for htmx requests and ``page`` (which includes it) otherwise.

    The fragment sees ``fragment`` true when it is rendered alone, so it can carry
    out-of-band updates of other parts of the page (htmx's ``hx-swap-oob``).
    """
    if is_htmx():
        return render_template(fragment, fragment=True, **context)
    return render_template(page, **context)
