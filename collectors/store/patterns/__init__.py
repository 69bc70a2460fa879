"""Writes and reads behind the pattern views: service graph, breakers, sagas, instances.

The write half is called from the writer inside a batch's transaction and keeps small
per-minute aggregates (edge and operation stats with latency histograms, instance
activity, breaker calls) and per-event rows (breaker transitions, fail-overs, saga
steps), so that no view ever scans the spans table. Only spans that carry the DESIGN.md pattern
attributes, entry spans (server, consumer, root) and cross-service pairs cost anything.

The read half is a reader class per noun, which :class:`collectors.store.SpanStore`
composes and exposes as its own methods; each returns the model's dataclasses, never rows.

One module per noun: :mod:`.traffic` (edge, operation and instance stats),
:mod:`.breakers` (breaker calls and transitions), :mod:`.discovery` (fail-overs) and
:mod:`.sagas` (saga instances and steps); :mod:`.batch` computes and writes a batch's rows through them and prunes old ones,
and :mod:`.conventions` holds the span attribute keys, edge modes and the minute bucket
they share.
"""
