"""OpenTelemetry traces, exported over OTLP/HTTP, configured by the standard OTEL_* variables
only: OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT), OTEL_SERVICE_NAME,
OTEL_TRACES_SAMPLER[_ARG], OTEL_SDK_DISABLED, OTEL_BSP_* for batching, OTEL_PROPAGATORS.

A caller's context is read from W3C `traceparent` and `tracestate` only, unless
OTEL_PROPAGATORS names more (the SDK's own default adds `baggage`, which the API does not use
and whose parser writes a warning per malformed entry of any client's header). A header longer
than MAX_CONTEXT_HEADER is not parsed at all, and a repeated `traceparent` voids the context
(W3C Trace Context: which one would be the caller's?).

Exporting is bounded: spans the backend does not take are counted
(`bank_spans_dropped_total`), and at shutdown the last spans get SHUTDOWN_SECONDS to leave;
what is still unsent then is dropped, counted and logged once, so a dead tracing backend never
holds a stopping worker past a container's stop grace period.

Off unless an endpoint is set: no provider, no database instrumentation, no server span, so
`make run` pays nothing for it.

When on, a request has a server span (started by api/request_layer.py, named after the route
template) with, inside it, a span per step the services mark with `step` (the idempotency
claim, the row locks, the ledger write) and one span per SQL statement (`sql_span`, made by
the engine's cursor, observability/sql_statements.py), with the statement on it. The server
span's attributes are set only when the sampler keeps it: most requests are not sampled, and
FastAPI's own server span, which builds them for every request before asking the sampler,
cost about a fifth of a request's CPU
(bankops/bench/PROFILE.md).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter

from bank_api import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

DEFAULT_SERVICE_NAME = "bank-api"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# W3C's own limits: traceparent is 55 characters, tracestate "SHOULD" fit in 512, baggage in
# 8,192. Anything longer is not a trace context, only work for a parser and lines in the log.
MAX_CONTEXT_HEADER = 8_192
# The time the last spans have to leave at shutdown: with uvicorn's 5 s for requests in
# flight, a stop stays well within Docker's 10 s grace period.
SHUTDOWN_SECONDS = 2.0

SPANS_DROPPED = Counter(
    "bank_spans_dropped",
    "Spans not delivered to the tracing backend (it refused them or did not answer, or the "
    "process stopped before they could leave)",
)

log = logging.getLogger(__name__)
# The API's own spans. Until a provider is set this is a no-op tracer, a few microseconds a
# span; configure() replaces it with the provider's own (the global one is a proxy: one more
# call per span).
tracer = trace.get_tracer("bank_api", __version__)
_provider: TracerProvider | None = None


def active() -> bool:
    """Tracing is configured in this process (configure() found an endpoint)."""
    return _provider is not None


def sql_span(statement: str) -> trace.Span | None:
    """A CLIENT span for one SQL statement (observability/sql_statements.py), only inside a
    recording span: a sampled request's. Not in a request the sampler left out, a health check
    or the fault switch's own reads (suppress_instrumentation), and never a trace of its own."""
    parent = trace.get_current_span()
    if not parent.is_recording() or not is_instrumentation_enabled():
        return None
    verb = statement.split(None, 1)[0].upper() if statement.strip() else "SQL"
    return tracer.start_span(verb, kind=SpanKind.CLIENT, attributes={
        "db.system": "postgresql", "db.statement": statement})


def failed(span: trace.Span, error: BaseException) -> None:
    """Mark a span as failed by this exception."""
    span.record_exception(error)
    span.set_status(StatusCode.ERROR)


Expected = type[BaseException] | tuple[type[BaseException], ...]


def step(name: str, expected: Expected = ()) -> AbstractContextManager[trace.Span | None]:
    """A span for one step of a request. An `expected` exception (for the bank, saying no: a
    refusal, an unknown account) is not the step failing: the span is marked as an error only
    for any other exception. With tracing off, or in a request the sampler left out, nothing
    at all: not even a no-op span (several microseconds each, for a span no one would see)."""
    if _provider is None or not trace.get_current_span().is_recording():
        return _NO_STEP
    return _step(name, expected)


_NO_STEP = nullcontext()


@contextmanager
def _step(name: str, expected: Expected) -> Iterator[trace.Span]:
    with tracer.start_as_current_span(name, record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            yield span
        except expected:
            raise
        except Exception as error:
            failed(span, error)
            raise


# The headers a caller's trace context comes in: the configured propagators' (W3C
# traceparent and tracestate unless OTEL_PROPAGATORS says otherwise), set by configure().
CONTEXT_HEADERS: frozenset[bytes] = frozenset()
_TRACEPARENT = "traceparent"


def add_context_header(carrier: dict[str, list[str]] | None, name: bytes,
                       value: bytes) -> dict[str, list[str]]:
    """One of CONTEXT_HEADERS, into the carrier start_server_span extracts from. Repeated
    fields are kept in order (tracestate and baggage combine them); a repeated traceparent
    voids it; an oversized value is ignored."""
    carrier = {} if carrier is None else carrier
    if len(value) <= MAX_CONTEXT_HEADER:
        carrier.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return carrier


def _usable(carrier: dict[str, list[str]]) -> dict[str, list[str]] | None:
    if len(carrier.get(_TRACEPARENT, ())) != 1:
        return None  # none, or more than one: a new trace
    return carrier


def start_server_span(method: str, route: str | None,
                      carrier: dict[str, list[str]] | None) -> trace.Span:
    """The request's SERVER span, named after the route template, continuing the caller's
    trace (`carrier`: its context headers, from add_context_header) and following its
    sampling decision. Whoever starts it adds its attributes, and only if `is_recording()`:
    most requests are not sampled."""
    carrier = _usable(carrier) if carrier else None
    return tracer.start_span(f"{method} {route}" if route else method, kind=SpanKind.SERVER,
                             context=propagate.extract(carrier) if carrier else None)


def exemplar(span: trace.Span | None) -> dict[str, str] | None:
    """The span's trace id as a metric exemplar, if its trace is sampled (else Tempo has no
    trace to show)."""
    if span is None:
        return None
    context = span.get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        return {"trace_id": trace.format_trace_id(context.trace_id)}
    return None


Event = tuple[str, dict[str, str], int]  # name, attributes, time in ns since the epoch


def end_server_span(span: trace.Span, status: int, error: BaseException | None,
                    attributes: dict[str, str | int] | None = None,
                    event: Event | None = None) -> None:
    """The answer's status, the request's own attributes and event (if it is recording); a
    5xx or an exception marks the span as an error."""
    if span.is_recording():
        span.set_attribute("http.response.status_code", status)
        if attributes:
            span.set_attributes(attributes)
        if event is not None:
            name, event_attributes, at = event
            span.add_event(name, event_attributes, at or None)
        if error is not None:
            span.record_exception(error)
        if error is not None or status >= 500:
            span.set_attribute("error.type", type(error).__qualname__ if error else str(status))
            span.set_status(StatusCode.ERROR)
    span.end()


def enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure() -> TracerProvider | None:
    """Start tracing in this process if the environment asks for it (once per process: the
    provider is global). None when off."""
    global _provider, _exporter, CONTEXT_HEADERS, tracer
    if _provider is not None or not enabled():
        return _provider
    # Imported here: a process with tracing off never loads the SDK or the exporter (about
    # 0.1 s of every worker's start).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    attributes = {SERVICE_VERSION: __version__}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    if not os.environ.get("OTEL_PROPAGATORS", "").strip():
        propagate.set_global_textmap(TraceContextTextMapPropagator())
    # The sampler comes from OTEL_TRACES_SAMPLER (default parentbased_always_on), the
    # exporter's endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*.
    provider = TracerProvider(resource=Resource.create(attributes))
    _exporter = _CountingExporter(OTLPSpanExporter())
    provider.add_span_processor(BatchSpanProcessor(_exporter))
    trace.set_tracer_provider(provider)
    CONTEXT_HEADERS = frozenset(name.lower().encode()
                                for name in propagate.get_global_textmap().fields)
    log.info("tracing on: OTLP/HTTP to %s, sampler %s, context from %s",
             next(os.environ[name] for name in ENDPOINT_VARIABLES if os.environ.get(name)),
             os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
             ", ".join(sorted(h.decode() for h in CONTEXT_HEADERS)))
    tracer = provider.get_tracer("bank_api", __version__)
    _provider = provider
    return provider


class _CountingExporter:
    """The OTLP exporter, with a count of the spans it could not deliver, and a way to give up
    at once: after abandon(), a retry in progress stops at its next pause and every later
    batch is dropped (and counted) without trying."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self._abandoned = False
        self.dropped = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        result = (SpanExportResult.FAILURE if self._abandoned
                  else self._exporter.export(spans))
        if result is not SpanExportResult.SUCCESS:
            self.dropped += len(spans)
            SPANS_DROPPED.inc(len(spans))
        return result

    def abandon(self) -> None:
        if not self._abandoned:
            self._abandoned = True
            self._exporter.shutdown()

    def shutdown(self) -> None:
        self.abandon()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


_exporter: _CountingExporter | None = None


def shutdown() -> None:
    """Export the spans still queued (at the end of the process's life), for at most
    SHUTDOWN_SECONDS; then drop the rest. What was never delivered is logged once."""
    if _provider is None or _exporter is None:
        return
    flush = threading.Thread(target=_provider.shutdown, name="tracing-shutdown", daemon=True)
    flush.start()
    flush.join(SHUTDOWN_SECONDS)
    if flush.is_alive():
        _exporter.abandon()  # what is left fails at once, and is counted
        flush.join(SHUTDOWN_SECONDS / 4)
    if _exporter.dropped:
        log.warning("%d spans were not delivered to the tracing backend", _exporter.dropped,
                    extra={"event": "spans_dropped", "spans": _exporter.dropped})
