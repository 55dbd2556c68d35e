"""/admin: the fault switch, guarded by ADMIN_TOKEN (disabled when it is not set)."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bank_api.api.deps import DatabaseDep, SettingsDep
from bank_api.api.route_table import route_templates
from bank_api.errors import NotFound, Unauthorized, UnknownRoute
from bank_api.faults import EXEMPT_PREFIXES, load
from bank_api.models import FaultInjection
from bank_api.schemas import FaultSettings


async def require_admin(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(description="Bearer <ADMIN_TOKEN>")] = None,
) -> None:
    if settings.admin_token is None:
        raise NotFound("admin endpoints are disabled; set ADMIN_TOKEN to enable them")
    expected = f"Bearer {settings.admin_token.get_secret_value()}"
    if authorization is None or not secrets.compare_digest(authorization.encode(),
                                                           expected.encode()):
        raise Unauthorized("send Authorization: Bearer <ADMIN_TOKEN>")


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses={401: {"description": "Missing or wrong token"}})


def _save(session: Session, request: Request, faults: FaultSettings) -> FaultSettings:
    faultable = {t for t in route_templates(request.app) if not t.startswith(EXEMPT_PREFIXES)}
    unknown = set(faults.routes) - faultable
    if unknown:
        raise UnknownRoute(f"not route templates of this API: {sorted(unknown)}")
    values = faults.model_dump() | {"updated_at": func.now()}
    session.execute(insert(FaultInjection).values(id=1, **values)
                    .on_conflict_do_update(index_elements=["id"], set_=values))
    session.commit()
    request.app.state.fault_switch.invalidate()
    return faults


@router.get("/faults", response_model=FaultSettings)
async def get_faults(request: Request):
    """The fault switch as it is now (off: latency 0, error rate 0)."""
    current = await run_in_threadpool(load, request.app.state.engine)
    return FaultSettings(latency_ms=current.latency_ms, error_rate=current.error_rate,
                         routes=list(current.routes))


@router.put("/faults", response_model=FaultSettings)
async def set_faults(faults: FaultSettings, request: Request, db: DatabaseDep):
    """Add latency and/or a rate of 500 answers to the given routes (all when empty).
    Every worker applies it within a second."""
    return await db.run(_save, request, faults)


@router.delete("/faults", response_model=FaultSettings)
async def clear_faults(request: Request, db: DatabaseDep):
    """Turn the fault switch off."""
    return await db.run(_save, request, FaultSettings())
