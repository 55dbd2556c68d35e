"""/admin: the fault switch, guarded by ADMIN_TOKEN (disabled when it is not set)."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from bank_api.api.deps import database, settings
from bank_api.api.paths import NOT_FAULTED
from bank_api.api.route_index import route_index
from bank_api.errors import NotFound, Unauthorized, UnknownRoute
from bank_api.schemas import FaultSettings
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


def _settings(faults: Faults) -> FaultSettings:
    return FaultSettings(latency_ms=faults.latency_ms, error_rate=faults.error_rate,
                         routes=list(faults.routes))


async def _save(request: Request, wanted: FaultSettings) -> FaultSettings:
    faultable = {t for t in route_index(request.app).templates if not t.startswith(NOT_FAULTED)}
    unknown = set(wanted.routes) - faultable
    if unknown:
        raise UnknownRoute(f"not route templates of this API: {sorted(unknown)}")
    faults = Faults(wanted.latency_ms, wanted.error_rate, tuple(wanted.routes))
    saved = await database(request).in_session(fault_switch.save, faults)
    request.app.state.fault_switch.invalidate()  # this worker applies it at once
    return _settings(saved)


@router.get("/faults", response_model=FaultSettings)
async def get_faults(request: Request):
    """The fault switch as it is now (off: latency 0, error rate 0)."""
    return _settings(await run_in_threadpool(fault_switch.load, request.app.state.engine))


@router.put("/faults", response_model=FaultSettings)
async def set_faults(faults: FaultSettings, request: Request):
    """Add latency and/or a rate of 500 answers to the given routes (all when empty).
    Every worker applies it within a second."""
    return await _save(request, faults)


@router.delete("/faults", response_model=FaultSettings)
async def clear_faults(request: Request):
    """Turn the fault switch off."""
    return await _save(request, FaultSettings())
