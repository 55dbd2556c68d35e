"""Applies the fault switch (services/faults.py) to requests: the added latency holds the
request like real slowness would, and the injected 500s are problem+json `fault_injected`."""

import asyncio
import random
import time

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from bank_api.api.paths import NOT_FAULTED
from bank_api.api.problems import problem
from bank_api.api.route_name import route_name
from bank_api.services.faults import OFF, Faults, load

REFRESH_SECONDS = 1.0


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
        if scope["type"] != "http" or scope["path"].startswith(NOT_FAULTED):
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
