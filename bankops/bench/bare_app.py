"""The web ceiling: a FastAPI app that does nothing, served exactly like the API.

    HOST=127.0.0.1 PORT=8420 WEB_CONCURRENCY=1 python -m bankops.bench.bare_app

GET /def is a plain `def` endpoint, run in the threadpool like every API handler; GET /async
is the same as `async def`, for reference (no threadpool hop). Both return a small JSON
object. uvicorn is started with the arguments `bank-api` uses (bank_api/cli.py): its
defaults otherwise, so uvloop and httptools when installed; the access log off, as
`bank-api` has it by default (ACCESS_LOG).
"""

import logging
import os
import signal
import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI(title="bare")


@app.get("/def")
def plain() -> dict:
    return {"id": 1, "status": "ok"}


@app.get("/async")
async def asynchronous() -> dict:
    return {"id": 1, "status": "ok"}


def main() -> None:
    # Keep in step with bank_api/cli.py: the same logging and the same uvicorn.run arguments.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "bankops.bench.bare_app:app",  # by import string: each worker imports it itself
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8420")),
        workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
        proxy_headers=False,
        timeout_graceful_shutdown=20,
        server_header=False,
        access_log=False,
        timeout_worker_healthcheck=float(os.environ.get("WORKER_HEALTHCHECK_TIMEOUT", "30")),
    )


if __name__ == "__main__":
    main()
