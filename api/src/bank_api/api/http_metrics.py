"""HTTP RED metrics with prometheus-fastapi-instrumentator, and the /metrics endpoint.

The latency histograms carry the request's trace id as an exemplar when its trace is sampled,
so a latency graph leads to the trace of a slow request. Exemplars exist only in the
OpenMetrics format (/metrics answers in it when the scraper asks, as Prometheus does) and only
in a single process: prometheus_client's multiprocess mode (WEB_CONCURRENCY > 1) drops them.
"""

import re
import sys
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_fastapi_instrumentator.metrics import Info
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.types import Receive, Scope, Send

from bank_api import __version__
from bank_api.api.paths import METRICS, NOT_MEASURED
from bank_api.api.route_name import route_name
from bank_api.observability import multiprocess as mp
from bank_api.observability.process_metrics import WorkerProcessesCollector

# Fine enough for p50/p95/p99 from a few milliseconds to seconds (the library's default,
# 0.1/0.5/1 s, puts every fast request in one bucket).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05, 0.075, 0.1,
                   0.15, 0.25, 0.35, 0.5, 0.75, 1, 1.5, 2.5, 5, 10)
# One histogram over all routes, for the latency heatmap.
HEATMAP_BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05,
                   0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10)

BUILD_INFO = Gauge("bank_build_info", "Version of the running API (value is always 1)",
                   ["version", "python_version"], multiprocess_mode="max")
BUILD_INFO.labels(__version__, sys.version.split()[0]).set(1)


class _Registries:
    """Exposes several registries as one (the app's HTTP metrics and the module-level ones)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self):
        for registry in self.registries:
            yield from registry.collect()


class HttpMetricsMiddleware(PrometheusInstrumentatorMiddleware):
    """The instrumentator's middleware (requests, latency, sizes), plus
    http_requests_inprogress{method, handler}: the instrumentator has that gauge too, but
    registers it in the global registry whatever registry it is given. One layer for both,
    and the route template matched once per request (bank_api.api.route_name) and shared
    with the fault switch further in."""

    def __init__(self, app, *, in_progress: Gauge, **options) -> None:
        super().__init__(app, **options)
        self.in_progress = in_progress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The library lets non-HTTP scopes through untouched, and /metrics is excluded from
        # every HTTP metric (`excluded_handlers`): no need to match its route at each scrape.
        if scope["type"] != "http" or scope["path"].startswith(NOT_MEASURED):
            await self.app(scope, receive, send)
            return
        in_progress = self.in_progress.labels(scope["method"], route_name(scope) or "none")
        in_progress.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            in_progress.dec()

    def _get_handler(self, request: Request) -> tuple[str, bool]:
        # The library's own look-up, minus a second match of the route: same contract (the
        # template, else the raw path; whether it was a template), so `excluded_handlers` and
        # `should_group_untemplated` see exactly what they did. A private method of
        # prometheus-fastapi-instrumentator 8.1: api/tests/test_metrics.py fails if it is no
        # longer called (one route match per request).
        if self.should_include_root_path:
            return super()._get_handler(request)
        name = route_name(request.scope)
        return name or request.url.path, bool(name)


def _trace_exemplar() -> dict[str, str] | None:
    """The current request's trace id, if its trace is sampled (else Tempo has no trace)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        return {"trace_id": trace.format_trace_id(context.trace_id)}
    return None


def red_metrics(registry: CollectorRegistry) -> Callable[[Info], None]:
    """The instrumentator's default metrics (metrics.default: same names, labels and buckets,
    docs/metrics.md), with trace exemplars on both latency histograms, which the library's
    own function cannot add. It runs after the answer is sent, still inside the request's
    span."""
    total = Counter("http_requests_total", "Total number of requests by method, status and "
                    "handler.", ["method", "status", "handler"], registry=registry)
    request_size = Summary("http_request_size_bytes", "Content length of incoming requests "
                           "by handler.", ["handler"], registry=registry)
    response_size = Summary("http_response_size_bytes", "Content length of outgoing "
                            "responses by handler.", ["handler"], registry=registry)
    latency_all = Histogram("http_request_duration_highr_seconds", "Latency with many "
                            "buckets but no API specific labels.", buckets=HEATMAP_BUCKETS,
                            registry=registry)
    latency = Histogram("http_request_duration_seconds", "Latency with only few buckets by "
                        "handler.", ["method", "handler"], buckets=LATENCY_BUCKETS,
                        registry=registry)

    def observe(info: Info) -> None:
        handler, exemplar = info.modified_handler, _trace_exemplar()
        total.labels(info.method, info.modified_status, handler).inc()
        request_size.labels(handler).observe(_content_length(info.request.headers))
        response_size.labels(handler).observe(
            _content_length(getattr(info.response, "headers", {})))
        latency_all.observe(info.modified_duration, exemplar)
        latency.labels(info.method, handler).observe(info.modified_duration, exemplar)

    return observe


def _content_length(headers) -> int:
    try:
        return int(headers.get("Content-Length", 0))
    except ValueError:  # a client's malformed header is not a reason to lose the request
        return 0


def instrument(app: FastAPI) -> None:
    # No `_created` series: nothing reads them (dashboards, alerts and reports use rates,
    # which do not need them), and in a single process they are one more line per counter,
    # summary and histogram label set at every scrape (multiprocess mode never has them).
    # The switch is process-wide and read at each scrape; only /metrics below exposes them.
    disable_created_metrics()
    # Each app gets its own registry for HTTP metrics, so several apps in one process (tests)
    # do not collide; in multiprocess mode all values go to the shared files anyway.
    http_registry = REGISTRY if mp.enabled() else CollectorRegistry()
    in_progress = Gauge("http_requests_inprogress", "HTTP requests being served",
                        ["method", "handler"], multiprocess_mode="livesum",
                        registry=http_registry)
    # The instrumentator's middleware with what Instrumentator(...).instrument() would pass;
    # its other options keep the library's defaults.
    app.add_middleware(
        HttpMetricsMiddleware,
        in_progress=in_progress,
        should_group_status_codes=False,
        should_group_untemplated=True,  # unknown paths are one `none` handler, not one each
        excluded_handlers=[f"^{re.escape(path)}" for path in NOT_MEASURED],
        registry=http_registry,
        instrumentations=[red_metrics(http_registry)],
    )

    @app.get(METRICS, include_in_schema=False)
    def metrics(request: Request) -> Response:
        if mp.enabled():
            workers = mp.mark_dead_workers()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(WorkerProcessesCollector(workers))
            source = registry
        else:
            source = _Registries(REGISTRY, http_registry)
        # OpenMetrics when the scraper accepts it (Prometheus does): only it carries exemplars.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(source), headers={"Content-Type": content_type})
