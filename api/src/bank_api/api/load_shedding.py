"""Shed load instead of queueing without limit.

Each worker serves at most `max_in_flight` requests at once. A request beyond that waits up
to `queue_timeout` seconds for a slot, then gets 503 `overloaded` with Retry-After: a client
learns at once that it should back off, and the requests already admitted keep their latency.
Health checks and /metrics are never shed, so the orchestrator and Prometheus still see in.
"""

import asyncio

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from bank_api.api.paths import NOT_SHED
from bank_api.api.problems import problem

SHED = Counter("bank_requests_shed", "Requests refused with 503 because the worker was full",
               ["reason"])


class LoadSheddingMiddleware:
    def __init__(self, app: ASGIApp, max_in_flight: int, queue_timeout: float) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(max_in_flight)
        self.queue_timeout = queue_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(NOT_SHED):
            await self.app(scope, receive, send)
            return
        try:
            if self.slots.locked():
                await asyncio.wait_for(self.slots.acquire(), self.queue_timeout)
            else:
                await self.slots.acquire()  # a slot is free: no wait
        except TimeoutError:
            SHED.labels("overload").inc()
            response = problem(503, "overloaded", "Server overloaded",
                               "too many requests in progress; retry after a moment",
                               headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release()
