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

from bank_api.api.problems import problem
from bank_api.services.faults import OFF, Faults, load

REFRESH_SECONDS = 1.0


class FaultSwitch:
    """The current faults, re-read from the database at most once a second per process.

    One read at a time: the request that finds the setting due reads it and waits for it;
    the others go on with the setting they have, unless it was changed here (`invalidate`,
    after PUT or DELETE /admin/faults) since it was read: then every request waits for a read
    that started after the change, so none slips through with the old setting."""

    def __init__(self) -> None:
        self.current = OFF
        self._next_refresh = 0.0
        self._changes = 0  # invalidate() calls so far
        self._read_at_change = 0  # how many of them the current setting was read after
        self._refresh: asyncio.Future | None = None

    def invalidate(self) -> None:
        self._changes += 1

    async def get(self, engine: Engine) -> Faults:
        while True:
            started = False
            if self._refresh is None and (self._stale() or time.monotonic() >= self._next_refresh):
                self._refresh = asyncio.ensure_future(self._reload(engine, self._changes))
                started = True
            if self._refresh is None or not (started or self._stale()):
                return self.current
            await asyncio.shield(self._refresh)  # a cancelled request leaves the read going
            if not self._stale():
                return self.current

    def _stale(self) -> bool:
        return self._read_at_change < self._changes

    async def _reload(self, engine: Engine, changes: int) -> None:
        try:
            # The switch's own housekeeping, not the request's work: no SQL span in the
            # trace of whichever request happens to refresh it.
            with suppress_instrumentation():
                self.current = await run_in_threadpool(load, engine)
        except Exception:  # database down: keep the last known setting
            pass
        finally:
            self._next_refresh = time.monotonic() + REFRESH_SECONDS
            self._read_at_change = changes
            self._refresh = None

    async def inject(self, scope: Scope, route: str | None) -> Response | None:
        """Apply the switch to a request of a route it may apply to (api/paths.py): its added
        latency, then the 500 to answer when this request draws one (None: go on)."""
        faults = await self.get(scope["app"].state.engine)
        if not faults.active or route is None or not faults.applies_to(route, scope["method"]):
            return None
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if random.random() < faults.error_rate:
            return problem(500, "fault_injected", "Injected fault",
                           "the fault switch is on for this route (PUT /admin/faults)",
                           Request(scope))
        return None
