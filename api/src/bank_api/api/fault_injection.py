"""Applies the fault switch (services/faults.py) to requests, from the request layer
(api/request_layer.py): the added latency holds the request like real slowness would (and
its load-shedding slot), and the injected 500s are problem+json `fault_injected`."""

import asyncio
import random
import time

from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from bank_api.api.paths import NOT_FAULTED
from bank_api.api.problems import problem
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
                # The switch's own housekeeping, not the request's work: no SQL span in the
                # trace of whichever request happens to refresh it.
                with suppress_instrumentation():
                    self.current = await run_in_threadpool(load, engine)
            except Exception:  # database down: keep the last known setting
                pass
            finally:
                self._refreshing = False
                self._next_refresh = time.monotonic() + REFRESH_SECONDS
        return self.current

    async def inject(self, scope: Scope, route: str | None) -> Response | None:
        """Apply the switch to a request: its added latency, then the 500 to answer when this
        request draws one (None: go on)."""
        if scope["path"].startswith(NOT_FAULTED):
            return None
        faults = await self.get(scope["app"].state.engine)
        if not faults.active or route is None or not faults.applies_to(route):
            return None
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if random.random() < faults.error_rate:
            return problem(500, "fault_injected", "Injected fault",
                           "the fault switch is on for this route (PUT /admin/faults)",
                           Request(scope))
        return None
