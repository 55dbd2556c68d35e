"""Liveness and readiness, for compose healthchecks and load balancers."""

from fastapi import APIRouter, Request
from sqlalchemy import text

from bank_api.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health)
def live():
    """The process is up and serving HTTP. Does not touch the database."""
    return {"status": "ok"}


@router.get("/ready", response_model=Health, responses={503: {"description": "Database down"}})
def ready(request: Request):
    """The database answers a query. A 503 (problem+json) when it does not."""
    with request.app.state.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"status": "ok"}
