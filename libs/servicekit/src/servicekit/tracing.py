"""OpenTelemetry tracing, with context carried through Kafka headers (W3C traceparent)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF


def configure_tracing(service_name: str) -> None:
    """Installs a tracer provider; spans are exported to the console only when asked for.

    Without an exporter no span is recorded (recording spans for nobody cost a good part of each
    request's CPU) and consumers start none; a trace context that arrives in Kafka headers is
    still passed on with the events it causes, so the same code traces whole customer turns
    across services once exporting is turned on."""
    resource = Resource.create({"service.name": service_name})
    if exporting():
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    trace.set_tracer_provider(provider)


def exporting() -> bool:
    """Whether spans are exported (`OTEL_TRACES_EXPORTER=console`), hence worth recording."""
    return os.environ.get("OTEL_TRACES_EXPORTER") == "console"


def current_trace_headers() -> dict[str, str]:
    """The active trace context as Kafka/HTTP headers, to be stored with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def trace_context_from(headers: Mapping[str, str]) -> Iterator[None]:
    """Makes the trace context carried in `headers` the current one."""
    token = context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        context.detach(token)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
