"""`bank-api`: run the API (default), apply migrations, or check the books.

    bank-api                 serve on HOST:PORT (127.0.0.1:8000); without DATABASE_URL, start
                             the embedded PostgreSQL and migrate it first
    bank-api migrate         apply migrations (alembic upgrade head) and exit
    bank-api audit           check the money invariants in SQL (bank_api/audit.py); exit 1
                             when the books do not balance
"""

import argparse
import os
import signal
import sys
from importlib.resources import files

import uvicorn
from alembic import command
from alembic.config import Config

from bank_api import audit
from bank_api.core import embedded
from bank_api.core.config import get_settings
from bank_api.observability import logs
from bank_api.observability import multiprocess as metrics_multiprocess


def migrate(database_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(files("bank_api") / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bank-api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["serve", "migrate", "audit"],
                        default="serve")
    args = parser.parse_args(argv)
    settings = get_settings()
    log_config = logs.configure(settings.log_format, settings.log_level)
    database_url = settings.database_url
    if database_url is None:
        database_url = embedded.start(settings.embedded_pg_dir)
        # Worker processes read the same settings: point them at the running server.
        os.environ["DATABASE_URL"] = database_url
        get_settings.cache_clear()
        migrate(database_url)
    elif args.command == "migrate":
        migrate(database_url)
    if args.command == "migrate":
        return
    if args.command == "audit":
        books = audit.check_database(database_url)
        print(audit.describe(books))
        sys.exit(0 if books.passed else 1)

    metrics_multiprocess.prepare(settings.web_concurrency)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it with the handler it found
    # installed: make that a normal exit, so atexit hooks (stopping the embedded PostgreSQL)
    # run and the exit code is 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "bank_api.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        proxy_headers=False,
        # A request's head has a deadline and a size limit (uvicorn sets neither). Named, not
        # imported: the module (through the API's problems) defines metrics, and metrics made
        # in this process before prepare() would open files in a folder not made yet.
        http="bank_api.api.http_protocol:BoundedHeadProtocol",
        # On SIGTERM, requests in flight get 5 s to finish (a bounded request takes far less:
        # QUEUE_TIMEOUT, DB_POOL_TIMEOUT, DB_STATEMENT_TIMEOUT_MS), then the last spans get
        # tracing.SHUTDOWN_SECONDS: a stop ends within Docker's 10 s grace period.
        timeout_graceful_shutdown=5,
        server_header=False,  # do not advertise the server software
        # The same logging in every worker process; uvicorn's access line is replaced by the
        # API's own (api/request_layer.py), which knows the route and the request id.
        log_config=log_config,
        access_log=False,
        # The supervisor replaces a worker that does not answer its ping in time; under a
        # load test on a small machine 5 s (uvicorn's default) kills healthy, busy workers.
        timeout_worker_healthcheck=settings.worker_healthcheck_timeout,
    )


if __name__ == "__main__":
    main()
