"""Writes and queries behind the pattern views: service graph, breakers, sagas, instances.

The write half is called from :meth:`SpanStore.write_spans` inside its transaction and
keeps small per-minute aggregates (edge and operation stats with latency histograms,
instance activity, breaker calls) and per-event rows (breaker transitions, saga steps),
so that no view ever scans the spans table. Only spans that carry the DESIGN.md pattern
attributes, entry spans (server, consumer, root) and cross-service pairs cost anything.

The read half is a set of functions taking the :class:`SpanStore`; each returns plain
dataclasses, never rows.

One module per noun: :mod:`.traffic` (edge, operation and instance stats),
:mod:`.breakers` (breaker calls and transitions) and :mod:`.sagas` (saga instances and
steps); :mod:`.batch` computes and writes a batch's rows through them and prunes old ones,
and :mod:`.conventions` holds the span attribute keys and edge modes they share.
"""

from collectors.store.patterns.batch import PatternRows, drop_stale_rows, pattern_rows, write_pattern_rows
from collectors.store.patterns.breakers import (
    BreakerCalls,
    BreakerTransition,
    find_breaker_calls,
    find_breaker_transitions,
    find_last_transitions_before,
)
from collectors.store.patterns.conventions import BUCKET_NS, MODE_ASYNC
from collectors.store.patterns.sagas import (
    RUNNING,
    SAGA_OUTCOMES,
    SagaInstance,
    SagaStep,
    find_saga_steps,
    find_sagas,
    get_saga,
)
from collectors.store.patterns.traffic import (
    EdgeAccumulator,
    EdgeStats,
    Histogram,
    InstanceActivity,
    OperationStats,
    edge_mode,
    find_edge_stats,
    find_edge_traces,
    find_instance_activity,
    find_operation_stats,
    find_service_series,
    find_service_traces,
    histogram_index,
    write_edge_stats,
)

__all__ = [
    "BUCKET_NS",
    "MODE_ASYNC",
    "RUNNING",
    "SAGA_OUTCOMES",
    "BreakerCalls",
    "BreakerTransition",
    "EdgeAccumulator",
    "EdgeStats",
    "Histogram",
    "InstanceActivity",
    "OperationStats",
    "PatternRows",
    "SagaInstance",
    "SagaStep",
    "drop_stale_rows",
    "edge_mode",
    "find_breaker_calls",
    "find_breaker_transitions",
    "find_edge_stats",
    "find_edge_traces",
    "find_instance_activity",
    "find_last_transitions_before",
    "find_operation_stats",
    "find_saga_steps",
    "find_sagas",
    "find_service_series",
    "find_service_traces",
    "get_saga",
    "histogram_index",
    "pattern_rows",
    "write_edge_stats",
    "write_pattern_rows",
]
