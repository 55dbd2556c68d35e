"""The FastAPI application: routers, error handlers, middleware, and the database lifecycle."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from bank_api import __version__
from bank_api.api import http_metrics, problems
from bank_api.api.body_limit import BodyLimitMiddleware
from bank_api.api.deps import Database
from bank_api.api.fault_injection import FaultMiddleware, FaultSwitch
from bank_api.api.load_shedding import LoadSheddingMiddleware
from bank_api.api.openapi import problem_openapi
from bank_api.api.paths import DOCS_ASSETS, NOT_TRACED
from bank_api.api.request_context import RequestContextMiddleware
from bank_api.api.routes import accounts, admin, health, transactions, transfers
from bank_api.api.security_headers import SecurityHeadersMiddleware
from bank_api.core import embedded
from bank_api.core.config import Settings, get_settings
from bank_api.core.db import make_engine, make_session_factory
from bank_api.observability import db_metrics, tracing
from bank_api.observability import multiprocess as metrics_multiprocess


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracer_provider = tracing.configure()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        url = settings.database_url or embedded.start(settings.embedded_pg_dir)
        engine = make_engine(settings, url)
        if settings.metrics_enabled:
            db_metrics.instrument(engine)
        app.state.engine = engine
        app.state.database = Database(make_session_factory(engine))
        yield
        # uvicorn has let in-flight requests finish by now; close the pool's connections.
        engine.dispose()
        tracing.shutdown()
        if metrics_multiprocess.enabled():
            metrics_multiprocess.mark_dead_workers()

    # FastAPI's /docs and /redoc pages load Swagger UI and ReDoc from a CDN; these serve the
    # same files from the fastapi-offline package, so the docs work without a network.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="Bank API",
        version=__version__,
        summary="Accounts, credits, debits and transfers on PostgreSQL, with a ledger that "
        "is always right.",
        description="Amounts are integers in minor units (cents). Errors are "
        "application/problem+json with a stable `code`.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry server span per request, named after its route, when
        # tracing is on (observability/tracing.py). Off, even the per-request check for a
        # provider is skipped. Metrics are Prometheus's job; logs go to stdout.
        telemetry={"tracing": tracer_provider is not None, "tracer_provider": tracer_provider,
                   "metrics": False, "logs": False, "operation_spans": False,
                   "exclude": lambda scope: scope["path"].startswith(NOT_TRACED)},
    )
    app.state.settings = settings
    problems.install(app)
    app.state.fault_switch = FaultSwitch()
    routers = (accounts.router, transactions.router, transfers.router, health.router, admin.router)
    for router in routers:
        app.include_router(router)
    # Middleware added last runs first. From the outside in: each request gets its id and
    # log line, metrics see every answer (shed requests, 413s and injected faults included),
    # headers go on every answer, overload is refused before a body is read, and injected
    # latency holds a slot like real slowness.
    app.add_middleware(FaultMiddleware, switch=app.state.fault_switch)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(LoadSheddingMiddleware, max_in_flight=settings.max_in_flight,
                       queue_timeout=settings.queue_timeout)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.metrics_enabled:
        http_metrics.instrument(app)
    app.add_middleware(RequestContextMiddleware, log_requests=settings.access_log,
                       tracing=tracer_provider is not None)
    problem_openapi(app)
    return app
