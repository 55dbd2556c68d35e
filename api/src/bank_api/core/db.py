"""The SQLAlchemy engine and session factory, sized and bounded from settings."""

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from bank_api.core.config import Settings
from bank_api.observability import sql_statements, tracing
from bank_api.observability.db_metrics import TimedQueuePool


def make_engine(settings: Settings, url: str) -> Engine:
    cursor = sql_statements.cursor_class(timed=settings.metrics_enabled,
                                         traced=tracing.active())
    return create_engine(
        url,
        poolclass=TimedQueuePool if settings.metrics_enabled else QueuePool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # A request waits this long for a free connection, then fails fast with a 503
        # instead of queueing without limit.
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        # Errors and logs name a statement's parameters as [parameters hidden]: they hold
        # what clients sent (names, addresses, descriptions), which no log line may carry.
        hide_parameters=True,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "bank-api",
            # Server-side bound on every statement, lock waits included.
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        } | ({"cursor_factory": cursor} if cursor is not None else {}),
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: responses are built from objects after the commit.
    return sessionmaker(engine, expire_on_commit=False)
