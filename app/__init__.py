"""The Spyglass dashboard and collector as one Flask app: ``from app import create_app``.

The factory lives in :mod:`app.factory` and is imported on first use, so that importing
a module of the package (``app.analysis`` above all, which is pure) loads neither Flask
nor the store.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "receiver_limits"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from app import factory

        return getattr(factory, name)
    raise AttributeError(f"module 'app' has no attribute {name!r}")
