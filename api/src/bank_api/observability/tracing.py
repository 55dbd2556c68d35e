"""OpenTelemetry traces, exported over OTLP/HTTP, configured by the standard OTEL_* variables
only: OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT), OTEL_SERVICE_NAME,
OTEL_TRACES_SAMPLER[_ARG], OTEL_SDK_DISABLED, OTEL_BSP_* for batching.

Off unless an endpoint is set: no provider, no database instrumentation, and FastAPI's own
request spans stay off (main.py), so `make run` pays nothing for it.

When on, a request has FastAPI's server span (named after the route template) with, inside
it, the spans named here (the idempotency claim, the row locks, the ledger write) and one
span per SQL statement from the psycopg2 instrumentation, with the statement on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import StatusCode

from bank_api import __version__
from bank_api.errors import BankError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

DEFAULT_SERVICE_NAME = "bank-api"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

log = logging.getLogger(__name__)
# The API's own spans. Until a provider is set this is a no-op tracer, a few microseconds a span.
tracer = trace.get_tracer("bank_api", __version__)
_provider: TracerProvider | None = None


@contextmanager
def step(name: str) -> Iterator[trace.Span]:
    """A span for one step of a request (usable as a decorator too). The bank saying no (a
    BankError: a refusal, an unknown account) is not the step failing: the span is marked as
    an error only for any other exception."""
    with tracer.start_as_current_span(name, record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            yield span
        except BankError:
            raise
        except Exception as error:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR)
            raise


def enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure() -> TracerProvider | None:
    """Start tracing in this process if the environment asks for it (once per process: the
    provider is global, and psycopg2 is instrumented module-wide). None when off."""
    global _provider
    if _provider is not None or not enabled():
        return _provider
    # Imported here: a process with tracing off never loads the SDK or the exporter (about
    # 0.1 s of every worker's start).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {SERVICE_VERSION: __version__}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    # The sampler comes from OTEL_TRACES_SAMPLER (default parentbased_always_on), the
    # exporter's endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*.
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Spans for SQL statements only inside a traced request: api/request_context.py suppresses
    # them for the paths that are not traced (health checks, /metrics).
    Psycopg2Instrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    log.info("tracing on: OTLP/HTTP to %s, sampler %s",
             next(os.environ[name] for name in ENDPOINT_VARIABLES if os.environ.get(name)),
             os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on"))
    _provider = provider
    return provider


def shutdown() -> None:
    """Export the spans still queued (at the end of the process's life)."""
    if _provider is not None:
        _provider.shutdown()
