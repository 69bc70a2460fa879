"""The model shared by the decoder, the store, the analysis and the views: plain dataclasses.

One module per noun: :mod:`.spans` (spans, resources, trace summaries, edges, decoded
batches), :mod:`.traffic` (histograms, edge, operation and instance stats),
:mod:`.breakers`, :mod:`.sagas` and :mod:`.discovery` (the read models of the pattern
views). Import from here; the split is for reading.
"""

from collectors.model.breakers import BreakerCalls, BreakerTransition
from collectors.model.discovery import Failover
from collectors.model.sagas import RUNNING, SAGA_OUTCOMES, STEP_KINDS, SagaInstance, SagaList, SagaStepSpan
from collectors.model.spans import (
    BYTES_MARKER,
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_PRODUCER,
    KIND_SERVER,
    SPAN_KIND_NAMES,
    STATUS_ERROR,
    STATUS_NAMES,
    STATUS_OK,
    STATUS_UNSET,
    AttrValue,
    DecodedBatch,
    Edge,
    Rejection,
    Resource,
    Span,
    SpanEvent,
    SpanLink,
    SpanOutline,
    TraceSummary,
)
from collectors.model.traffic import (
    HISTOGRAM_BOUNDS_NS,
    HISTOGRAM_BUCKETS,
    STATS_BUCKET_NS,
    EdgeStats,
    Histogram,
    InstanceActivity,
    OperationTraffic,
    ServiceMinute,
    histogram_index,
)

__all__ = [
    "BYTES_MARKER",
    "HISTOGRAM_BOUNDS_NS",
    "HISTOGRAM_BUCKETS",
    "KIND_CLIENT",
    "KIND_CONSUMER",
    "KIND_PRODUCER",
    "KIND_SERVER",
    "RUNNING",
    "SAGA_OUTCOMES",
    "STEP_KINDS",
    "SPAN_KIND_NAMES",
    "STATS_BUCKET_NS",
    "STATUS_ERROR",
    "STATUS_NAMES",
    "STATUS_OK",
    "STATUS_UNSET",
    "AttrValue",
    "BreakerCalls",
    "BreakerTransition",
    "DecodedBatch",
    "Edge",
    "EdgeStats",
    "Failover",
    "Histogram",
    "InstanceActivity",
    "OperationTraffic",
    "Rejection",
    "Resource",
    "SagaInstance",
    "SagaList",
    "SagaStepSpan",
    "ServiceMinute",
    "Span",
    "SpanEvent",
    "SpanLink",
    "SpanOutline",
    "TraceSummary",
    "histogram_index",
]
