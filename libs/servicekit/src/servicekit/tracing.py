"""OpenTelemetry tracing, with context carried through Kafka headers (W3C traceparent).

One customer turn is one trace: the gateway's HTTP request span is the root; the command it
publishes carries its context in the record's headers; each consumer makes the context of the
record it handles current (`trace_context_from`) and, when spans are exported, opens a
`handle <event type>` span under it; the events a handler stages in the outbox (or schedules as
timers) store the context of that span with them, and so on, until the gateway pushes the reply
to the customer's socket (`push <event type>`).

Off by default (`OTEL_TRACES_EXPORTER=none`): the provider then samples nothing, no span is
started per event or request, and nothing is exported. The context still travels when a
producer sends one (a test's, or an upstream system's), so turning exporting on in one service
never breaks the chain of the others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

if TYPE_CHECKING:
    from servicekit.settings import ServiceSettings

_provider: TracerProvider | None = None  # the one installed by `configure_tracing`
_exporting = False
_global_set = False
_tracers: dict[str, trace.Tracer] = {}


def configure_tracing(
    service_name: str, settings: ServiceSettings | None = None, *, exporter: SpanExporter | None = None
) -> None:
    """Installs this process's tracer provider. Spans are recorded only with an exporter: the
    one given (a test's in-memory exporter), else the one the settings name (`otlp`: OTLP over
    HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`; `console`: JSON to stdout or `TRACING_CONSOLE_FILE`).
    Without one no span is recorded (recording spans for nobody cost a good part of each
    request's CPU) and consumers start none.

    Calling it again replaces the provider (the previous one is flushed and shut down): the
    OpenTelemetry API lets the global provider be set once per process only, so servicekit
    hands out tracers of its own provider (`tracer`) and gives it to FastAPI explicitly."""
    global _provider, _exporting, _global_set
    span_exporter = exporter or (_exporter_from(settings) if settings is not None else _exporter_from_env())
    resource = Resource.create({"service.name": service_name})
    if span_exporter is not None:
        ratio = settings.tracing_sample_ratio if settings is not None else 1.0
        # Parent-based: a turn is traced whole or not at all, as decided where it started.
        provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(ratio)))
        # Exported in batches by a background thread, off the event loop.
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    else:
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    if _provider is not None:
        _provider.shutdown()
    _provider, _exporting = provider, span_exporter is not None
    _tracers.clear()
    if not _global_set:  # for libraries that ask the global provider
        trace.set_tracer_provider(provider)
        _global_set = True


def _exporter_from(settings: ServiceSettings) -> SpanExporter | None:
    if settings.otel_traces_exporter == "otlp":
        # Imported only when asked for: the exporter pulls in protobuf and an HTTP client.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces")
    if settings.otel_traces_exporter == "console":
        return _console_exporter(settings.tracing_console_file)
    return None


def _exporter_from_env() -> SpanExporter | None:
    # For callers without settings (library tests): only the console exporter.
    return _console_exporter("") if os.environ.get("OTEL_TRACES_EXPORTER") == "console" else None


def _console_exporter(path: str) -> SpanExporter:
    """Spans as JSON, one a line: to stdout, or appended to `path` (a test collects them)."""
    out: TextIO = open(path, "a", buffering=1, encoding="utf-8") if path else sys.stdout  # noqa: SIM115 -- kept open for the process's life

    def one_line(span: ReadableSpan) -> str:
        return f"{span.to_json(indent=None)}\n"

    return ConsoleSpanExporter(out=out, formatter=one_line)


def exporting() -> bool:
    """Whether spans are exported, hence worth recording."""
    return _exporting


def provider() -> trace.TracerProvider:
    """servicekit's tracer provider (the global one until `configure_tracing` ran)."""
    return _provider if _provider is not None else trace.get_tracer_provider()


def tracer(name: str) -> trace.Tracer:
    """A tracer of servicekit's provider, made once per name."""
    found = _tracers.get(name)
    if found is None:
        found = _tracers[name] = provider().get_tracer(name)
    return found


def flush_spans(timeout_millis: int = 5_000) -> None:
    """Exports the spans still buffered (at shutdown, or before a test reads them)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def current_trace_headers() -> dict[str, str]:
    """The active trace context as Kafka/HTTP headers, to be stored with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def headers_of(record_headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """A Kafka record's headers as text, to extract its trace context from."""
    return {key: value.decode(errors="replace") for key, value in record_headers or () if value is not None}


@contextmanager
def trace_context_from(headers: Mapping[str, str]) -> Iterator[None]:
    """Makes the trace context carried in `headers` the current one."""
    token = context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def consumer_span(
    name: str, *, topic: str, group: str | None, event_type: str, parent: Mapping[str, str] | None = None
) -> Iterator[None]:
    """A span around the handling of one consumed record, under the current context, or under
    the one carried in `parent` (the record's headers). Start it only when `exporting()`."""
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "event_type": event_type,
    }
    if group is not None:
        attributes["messaging.consumer.group.name"] = group
    parent_context = propagate.extract(dict(parent)) if parent is not None else None
    with tracer("servicekit").start_as_current_span(
        name, context=parent_context, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ):
        yield


@contextmanager
def server_span(name: str, **attributes: str) -> Iterator[None]:
    """A span around work a client asked for outside an HTTP request (a message sent on a
    WebSocket, whose socket itself is not traced): the root of that work's trace. Nothing is
    recorded when spans are not exported."""
    if not _exporting:
        yield
        return
    with tracer("servicekit").start_as_current_span(name, kind=trace.SpanKind.SERVER, attributes=attributes):
        yield
