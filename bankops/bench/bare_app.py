"""The web ceiling: a FastAPI app that does nothing, served exactly like the API.

    HOST=127.0.0.1 PORT=8420 WEB_CONCURRENCY=1 python -m bankops.bench.bare_app

GET /def is a plain `def` endpoint, run in the threadpool as the API runs its database
work; GET /async is the same as `async def`, for reference (no threadpool hop). Both return a
small JSON object. Served as `bank-api` serves the API (serving.py).
"""

from fastapi import FastAPI

from bankops.bench.serving import lifespan, serve

app = FastAPI(title="bare", lifespan=lifespan)


@app.get("/def")
def plain() -> dict:
    return {"id": 1, "status": "ok"}


@app.get("/async")
async def asynchronous() -> dict:
    return {"id": 1, "status": "ok"}


if __name__ == "__main__":
    serve("bankops.bench.bare_app:app", default_port=8420)
