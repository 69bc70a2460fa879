"""Spans as the decoder builds them, the store keeps them and the views read them.

Ids are lowercase hex strings (32 characters for a trace, 16 for a span), times are
integer nanoseconds since the epoch, and attribute values are plain JSON values:
str, int, float, bool, None (an empty value), list (OTLP arrays) and dict (OTLP
kvlists). An OTLP ``bytes`` value becomes the one-entry dict ``{BYTES_MARKER: "<base64>"}``:
the key starts with a NUL character, which no kvlist key that reaches the store can hold
(NUL is replaced in stored text), so the two stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AttrValue = Any  # str | int | float | bool | list | dict | None

SPAN_KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
KIND_SERVER = 2
KIND_CLIENT = 3
KIND_PRODUCER = 4
KIND_CONSUMER = 5

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2
STATUS_NAMES = {STATUS_UNSET: "unset", STATUS_OK: "ok", STATUS_ERROR: "error"}

BYTES_MARKER = "\x00bytes"
"""Key of the one-entry dict that stands for an OTLP bytes value (base64 text)."""


@dataclass(slots=True)
class SpanEvent:
    """A timestamped event on a span (exceptions are events named ``exception``)."""

    time_ns: int
    name: str
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    dropped_attributes_count: int = 0


@dataclass(slots=True)
class SpanLink:
    """A link from a span to another span, possibly in another trace."""

    trace_id: str
    span_id: str
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    trace_state: str = ""


@dataclass(frozen=True, slots=True)
class Resource:
    """The resource (process) and instrumentation scope that produced a group of spans."""

    service_name: str
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    scope_attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    """One span as stored: ids in lowercase hex, times in nanoseconds.

    Read-only by convention, but not ``frozen``: a frozen dataclass sets each of its 18
    fields through ``object.__setattr__``, which made building a span four times slower
    (2.4 against 0.6 microseconds, measured), a tenth of decoding a span. Spans, events
    and links are built at ingest and at read time only; nothing changes them after.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    resource: Resource
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    status_code: int = STATUS_UNSET
    status_message: str = ""
    trace_state: str = ""
    flags: int = 0
    dropped_attributes_count: int = 0
    dropped_events_count: int = 0
    dropped_links_count: int = 0

    @property
    def service(self) -> str:
        """The service name of the span's resource."""
        return self.resource.service_name

    @property
    def duration_ns(self) -> int:
        """End minus start, never negative."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def is_error(self) -> bool:
        """Whether the span's status is ERROR."""
        return self.status_code == STATUS_ERROR


@dataclass(slots=True)
class SpanOutline:
    """A span's place and timing without its attributes, events and links: what a
    structural comparison of traces reads (a fraction of the cost of a whole Span)."""

    span_id: str
    parent_span_id: str
    service: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int = STATUS_UNSET

    @property
    def duration_ns(self) -> int:
        """End minus start, never negative."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def is_error(self) -> bool:
        """Whether the span's status is ERROR."""
        return self.status_code == STATUS_ERROR


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """Per-trace figures kept up to date at ingest so listing traces scans no spans; the
    failure's service and reason are those of the deepest error span."""

    trace_id: str
    root_service: str
    root_name: str
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    services: tuple[str, ...] = ()
    received_ns: int = 0
    failure_service: str | None = None
    failure_reason: str | None = None

    @property
    def duration_ns(self) -> int:
        """Duration of the whole trace, first start to last end."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def failure(self) -> str:
        """Why the trace failed, in a line: ``payment: card declined`` (the reason of its
        deepest error span), ``unknown`` for an error stored before reasons were kept,
        and empty when no span failed."""
        if not self.error_count:
            return ""
        if self.failure_reason is None:
            return "unknown"
        return f"{self.failure_service}: {self.failure_reason}" if self.failure_service else self.failure_reason


@dataclass(frozen=True, slots=True)
class Edge:
    """Aggregated calls from one service to another over a time window."""

    parent: str
    child: str
    call_count: int
    error_count: int
    duration_sum_ns: int
    duration_max_ns: int

    @property
    def error_rate(self) -> float:
        """Errors per call, 0 when there were no calls."""
        return self.error_count / self.call_count if self.call_count else 0.0

    @property
    def mean_duration_ns(self) -> float:
        """Mean call latency in nanoseconds."""
        return self.duration_sum_ns / self.call_count if self.call_count else 0.0


@dataclass(frozen=True, slots=True)
class Rejection:
    """A span refused at ingest, with the reason reported in ``partial_success``."""

    where: str
    reason: str


@dataclass(slots=True)
class DecodedBatch:
    """The result of decoding one export request: valid spans and rejected ones."""

    spans: list[Span] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    truncated: int = 0

    @property
    def rejected_count(self) -> int:
        """Number of spans refused."""
        return len(self.rejections)

    def error_message(self) -> str:
        """A short message for ``partial_success.error_message`` (first few reasons)."""
        parts = [f"{r.where}: {r.reason}" for r in self.rejections[:5]]
        if len(self.rejections) > 5:
            parts.append(f"and {len(self.rejections) - 5} more rejected")
        if self.truncated:
            parts.append(
                f"{self.truncated} attribute lists, event lists or values were truncated to the collector's limits"
            )
        return "; ".join(parts)
