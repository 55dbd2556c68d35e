"""HTTP RED metrics with prometheus-fastapi-instrumentator, and the /metrics endpoint."""

import re
import sys

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
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
        latency_lowr_buckets=LATENCY_BUCKETS,
        latency_highr_buckets=HEATMAP_BUCKETS,
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
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)
