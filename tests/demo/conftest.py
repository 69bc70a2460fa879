"""Fixtures for the demo tests: an in-memory span exporter for the pattern unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Spans:
    """A tracer provider whose finished spans can be read back."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def finished(self) -> list:
        """Return the finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        """Forget the spans seen so far."""
        self.exporter.clear()


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Yield a fresh in-memory tracer."""
    recorder = Spans()
    yield recorder
    recorder.provider.shutdown()
