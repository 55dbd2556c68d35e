"""/admin: the fault switch, guarded by ADMIN_TOKEN (disabled when it is not set)."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from bank_api.api.deps import database, settings
from bank_api.api.paths import NOT_FAULTED
from bank_api.api.route_index import route_index
from bank_api.errors import NotFound, Unauthorized, UnknownRoute
from bank_api.schemas import FaultSettings, FaultState
from bank_api.services import faults as fault_switch
from bank_api.services.faults import Faults


async def require_admin(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <ADMIN_TOKEN>")] = None,
) -> None:
    token = settings(request).admin_token
    if token is None:
        raise NotFound("admin endpoints are disabled; set ADMIN_TOKEN to enable them")
    expected = f"Bearer {token.get_secret_value()}"
    if authorization is None or not secrets.compare_digest(authorization.encode(),
                                                           expected.encode()):
        raise Unauthorized("send Authorization: Bearer <ADMIN_TOKEN>")


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses={401: {"description": "Missing or wrong token"}})


def _state(faults: Faults) -> FaultState:
    return FaultState(latency_ms=faults.latency_ms, error_rate=faults.error_rate,
                      routes=list(faults.routes), methods=list(faults.methods),
                      expires_at=faults.expires_at)


async def _save(request: Request, wanted: FaultSettings) -> FaultState:
    faultable = {t for t in route_index(request.app).templates if not t.startswith(NOT_FAULTED)}
    unknown = set(wanted.routes) - faultable
    if unknown:
        raise UnknownRoute(f"not route templates of this API: {sorted(unknown)}")
    faults = Faults(wanted.latency_ms, wanted.error_rate, tuple(wanted.routes),
                    tuple(wanted.methods))
    saved = await database(request).in_session(fault_switch.save, faults, wanted.duration_s)
    request.app.state.fault_switch.invalidate()  # this worker applies it at once
    return _state(saved)


@router.get("/faults", response_model=FaultState)
async def get_faults(request: Request):
    """The fault switch as it is in force now (off: latency 0, error rate 0, also once its
    deadline has passed)."""
    return _state(await run_in_threadpool(fault_switch.load, request.app.state.engine))


@router.put("/faults", response_model=FaultState)
async def set_faults(faults: FaultSettings, request: Request):
    """Add latency and/or a rate of 500 answers to the given routes and methods (all when
    empty), for duration_s seconds when given. Every worker applies it within a second."""
    return await _save(request, faults)


@router.delete("/faults", response_model=FaultState)
async def clear_faults(request: Request):
    """Turn the fault switch off."""
    return await _save(request, FaultSettings())
