"""How the benchmark's own apps (bare_app.py, ceiling_app.py) are served: exactly as `bank-api`
serves the API (bank_api/cli.py), so what differs between them is the app and nothing else.

uvicorn with its defaults otherwise (uvloop and httptools when installed), its access log off
as `bank-api` has it by default, HOST, PORT and WEB_CONCURRENCY from the environment.
"""

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from bank_api.core import garbage_collection


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """What the API does once started (bank_api/main.py): the garbage collector's settings.
    A runtime setting like uvicorn's, not a feature: the ceilings get it too."""
    garbage_collection.tune()
    yield


def serve(app: str, default_port: int) -> None:
    """Serve `app` (an import string: each worker imports it itself) until SIGTERM."""
    # Keep in step with bank_api/cli.py: the same uvicorn.run arguments.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", str(default_port))),
        workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
        proxy_headers=False,
        timeout_graceful_shutdown=20,
        server_header=False,
        access_log=False,
        timeout_worker_healthcheck=float(os.environ.get("WORKER_HEALTHCHECK_TIMEOUT", "30")),
    )
