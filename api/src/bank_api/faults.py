"""The fault switch for demos: added latency and a rate of 500 answers on chosen routes.

Off by default. An operator with ADMIN_TOKEN sets it with PUT /admin/faults; the setting is
one database row, so every worker of every replica picks it up within a second, and a class
can watch the latency and 5xx alerts fire, then clear.
"""

import asyncio
import random
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from bank_api.api.problems import problem
from bank_api.api.route_name import route_name
from bank_api.models import FaultInjection

# Never faulted: the switch itself, health checks (or the orchestrator would restart the
# API) and metrics (or the dashboards would lose sight of the fault).
EXEMPT_PREFIXES = ("/admin", "/health", "/metrics", "/docs", "/openapi.json")
REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0
    routes: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """Whether there is anything to inject at all."""
        return self.latency_ms > 0 or self.error_rate > 0

    def applies_to(self, route: str) -> bool:
        return self.active and (not self.routes or route in self.routes)


OFF = Faults()


def load(engine: Engine) -> Faults:
    with engine.connect() as connection:
        row = connection.execute(select(FaultInjection)).first()
    if row is None:
        return OFF
    return Faults(row.latency_ms, row.error_rate, tuple(row.routes))


class FaultSwitch:
    """The current faults, re-read from the database at most once a second per process."""

    def __init__(self) -> None:
        self.current = OFF
        self._next_refresh = 0.0
        self._refreshing = False

    def invalidate(self) -> None:
        self._next_refresh = 0.0

    async def get(self, engine: Engine) -> Faults:
        if time.monotonic() >= self._next_refresh and not self._refreshing:
            self._refreshing = True
            try:
                self.current = await run_in_threadpool(load, engine)
            except Exception:  # database down: keep the last known setting
                pass
            finally:
                self._refreshing = False
                self._next_refresh = time.monotonic() + REFRESH_SECONDS
        return self.current


class FaultMiddleware:
    def __init__(self, app: ASGIApp, switch: FaultSwitch) -> None:
        self.app = app
        self.switch = switch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        faults = await self.switch.get(scope["app"].state.engine)
        if not faults.active:  # the usual case: nothing to inject, so no route look-up at all
            await self.app(scope, receive, send)
            return
        # Matched once per request: the HTTP metrics middleware, further out, usually has.
        route = route_name(scope)
        if route is not None and faults.applies_to(route):
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if random.random() < faults.error_rate:
                response = problem(500, "fault_injected", "Injected fault",
                                   "the fault switch is on for this route (PUT /admin/faults)",
                                   Request(scope))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
