"""Fixtures for the demo tests: an in-memory span exporter for the pattern unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.demo.helpers import Spans


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Yield a fresh in-memory tracer."""
    recorder = Spans()
    yield recorder
    recorder.provider.shutdown()
