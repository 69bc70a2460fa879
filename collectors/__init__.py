"""Ingest and storage of OpenTelemetry traces: OTLP decoding, the receiver, the span store."""
