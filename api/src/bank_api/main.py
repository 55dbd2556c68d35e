"""The FastAPI application: routers, error handlers, middleware, and the database lifecycle."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from bank_api import __version__
from bank_api.api import metrics_endpoint, problems
from bank_api.api.body_limit import BodyLimit
from bank_api.api.deps import Database
from bank_api.api.fault_injection import FaultSwitch
from bank_api.api.load_shedding import LoadShedder
from bank_api.api.openapi import problem_openapi
from bank_api.api.paths import DOCS_ASSETS
from bank_api.api.request_layer import RequestLayer
from bank_api.api.routes import accounts, admin, health, transactions, transfers
from bank_api.core import embedded, garbage_collection
from bank_api.core.config import Settings, get_settings
from bank_api.core.db import make_engine, make_session_factory
from bank_api.observability import db_metrics, logs, tracing
from bank_api.observability import multiprocess as metrics_multiprocess


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracer_provider = tracing.configure()
    logs.skip_unused_record_fields()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        url = settings.database_url or embedded.start(settings.embedded_pg_dir)
        engine = make_engine(settings, url)
        if settings.metrics_enabled:
            db_metrics.instrument(engine)
        app.state.engine = engine
        # A thread per connection the pool can hand out: more would only wait for one.
        app.state.database = Database(engine, make_session_factory(engine),
                                      threads=settings.db_pool_size + settings.db_max_overflow)
        garbage_collection.tune()  # everything above is built: freeze it
        yield
        # uvicorn has let in-flight requests finish by now; close the pool's connections.
        app.state.database.close()
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
        # FastAPI's own OpenTelemetry hooks off: the request layer starts the server span
        # (observability/tracing.py), more cheaply. Metrics are Prometheus's job; logs go to
        # stdout.
        telemetry={"tracing": False, "metrics": False, "logs": False,
                   "operation_spans": False},
    )
    app.state.settings = settings
    problems.install(app)
    app.state.fault_switch = FaultSwitch()
    routers = (accounts.router, transactions.router, transfers.router, health.router, admin.router)
    for router in routers:
        app.include_router(router)
    # Every cross-cutting concern of a request (its id and log line, metrics, load shedding,
    # the body limit, the fault switch, security headers, the 500 problem) in one layer.
    app.add_middleware(
        RequestLayer,
        metrics=metrics_endpoint.instrument(app) if settings.metrics_enabled else None,
        shedder=LoadShedder(settings.max_in_flight, settings.queue_timeout),
        body_limit=BodyLimit(settings.max_body_bytes),
        faults=app.state.fault_switch,
        log_requests=settings.access_log,
        tracing=tracer_provider is not None,
    )
    problem_openapi(app)
    return app
