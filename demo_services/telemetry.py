"""Tracing set-up for a demo process, and trace-context helpers for HTTP and messages.

The SDK and the OTLP/HTTP exporter are configured once, in each service's ``main()``;
every other module uses the OpenTelemetry API only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SCHEDULE_DELAY_MS = 200
SERVICE_NAME = "service.name"
SERVICE_INSTANCE_ID = "service.instance.id"
EXPERIMENT_ID = "chaos.experiment_id"
"""The baggage entry a chaos experiment sends with each request, copied onto every span."""
MAX_BAGGAGE_VALUE = 64
SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
CAPTURE_RESPONSE_HEADERS = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
RECORDED_RESPONSE_HEADERS = "Retry-After"
"""Answer headers a server span records (``http.response.header.retry_after``), so that a
429's promise of when to retry can be checked from the stored spans."""


def configure_tracing(
    service_name: str,
    otlp_http_addr: str,
    instance_id: str | None = None,
    auth_token: str = "",
) -> TracerProvider:
    """Install a global tracer provider that batches spans to ``http://<addr>/v1/traces``.

    The batch processor flushes every 200 ms so traces land in Spyglass quickly. The caller
    shuts the returned provider down on exit so the last batch is sent.
    """
    attributes = {SERVICE_NAME: service_name}
    if instance_id:
        attributes[SERVICE_INSTANCE_ID] = instance_id
    provider = TracerProvider(resource=Resource.create(attributes))
    headers = {"Authorization": f"Bearer {auth_token}"} if auth_token else None
    exporter = OTLPSpanExporter(endpoint=f"http://{otlp_http_addr}/v1/traces", headers=headers, timeout=5)
    provider.add_span_processor(ExperimentBaggage())
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=SCHEDULE_DELAY_MS))
    trace.set_tracer_provider(provider)
    return provider


def use_stable_http_conventions() -> None:
    """Have the HTTP instrumentations emit the stable semantic conventions
    (``http.request.method``, ``http.response.status_code``, ``url.path``, ``http.route``)
    and record the ``Retry-After`` answer header on server spans, unless the process was
    told otherwise: call before instrumenting anything."""
    os.environ.setdefault(SEMCONV_OPT_IN, "http")
    os.environ.setdefault(CAPTURE_RESPONSE_HEADERS, RECORDED_RESPONSE_HEADERS)


def inject_headers(headers: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write the W3C trace context of ``context`` (default: current) into ``headers``."""
    propagate.inject(headers, context=context)


def extract_context(headers: Mapping[str, str]) -> Context:
    """Read a trace context from HTTP or message headers."""
    return propagate.extract(dict(headers))


class ExperimentBaggage(SpanProcessor):
    """Copy the ``chaos.experiment_id`` baggage entry into a span attribute of the same
    name, so that a tag search finds every span an experiment's requests caused."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        value = baggage.get_baggage(EXPERIMENT_ID, parent_context)
        if isinstance(value, str) and value:
            span.set_attribute(EXPERIMENT_ID, value[:MAX_BAGGAGE_VALUE])
