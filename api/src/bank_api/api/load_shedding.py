"""Shed load instead of queueing without limit.

Each worker serves at most `max_in_flight` requests at once. A request beyond that waits up
to `queue_timeout` seconds for a slot, then gets 503 `overloaded` with Retry-After: a client
learns at once that it should back off, and the requests already admitted keep their latency.
Health checks and /metrics are never shed (api/paths.py), so the orchestrator and Prometheus
still see in. Applied by the request layer (api/request_layer.py).
"""

import asyncio

from prometheus_client import Counter
from starlette.responses import Response

from bank_api.api.problems import problem

SHED = Counter("bank_requests_shed", "Requests refused with 503 because the worker was full",
               ["reason"])


class LoadShedder:
    def __init__(self, max_in_flight: int, queue_timeout: float) -> None:
        self.slots = asyncio.Semaphore(max_in_flight)
        self.queue_timeout = queue_timeout

    async def admit(self) -> bool:
        """Take a slot (True), waiting up to queue_timeout for one; False: shed, and counted."""
        try:
            if self.slots.locked():
                await asyncio.wait_for(self.slots.acquire(), self.queue_timeout)
            else:
                await self.slots.acquire()  # a slot is free: no wait
        except TimeoutError:
            SHED.labels("overload").inc()
            return False
        return True

    def release(self) -> None:
        self.slots.release()


def overloaded() -> Response:
    return problem(503, "overloaded", "Server overloaded",
                   "too many requests in progress; retry after a moment",
                   headers={"Retry-After": "1"})
