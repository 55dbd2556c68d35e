"""Liveness and readiness, for compose healthchecks and load balancers."""

from fastapi import APIRouter, Request
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from bank_api.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health)
async def live():
    """The process is up and serving HTTP. Does not touch the database."""
    return {"status": "ok"}


@router.get("/ready", response_model=Health, responses={503: {"description": "Database down"}})
async def ready(request: Request):
    """The database answers a query. A 503 (problem+json) when it does not."""
    await run_in_threadpool(_ping, request.app.state.engine)
    return {"status": "ok"}


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
