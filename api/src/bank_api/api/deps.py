"""Dependencies shared by the routers, and the Database that runs their work off the loop.

Handlers are `async def` and hand their database work to `Database.on_connection` (Core
statements on a pooled connection: the money movements and the single-row reads) or
`Database.in_session` (an ORM session: opening, updating and closing accounts, the lists, the
fault switch). Either runs the work in one go in a worker thread: one thread hop per request.
A connection costs a fraction of a session's CPU per request. (A plain `def` handler with a
session dependency costs four hops: entering and leaving the dependency, the handler, and
validating the response, each about 0.15 ms of CPU; bankops/bench/PROFILE.md measured them.)
The app's Database and Settings are read off the request (`database(request)`,
`settings(request)`) rather than declared as dependencies: FastAPI resolves a dependency per
request, about 0.02 ms each. The dependencies below are `async def`: they do no I/O, so they
need no thread.
"""

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Concatenate, ParamSpec, TypeVar

from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from bank_api.core.config import Settings
from bank_api.schemas import MAX_ID

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """Runs units of work off the event loop, each on its own pooled connection.

    The threads are the executor's own, as many as the pool has connections (pool size plus
    overflow): a unit of work beyond that waits in the executor's queue rather than on the
    pool, where thirty threads taking turns at fifteen connections cost a twentieth of a
    read's throughput (PROFILE.md). Requests admitted at once are bounded by load shedding,
    each statement by the statement timeout. asyncio's run_in_executor is also a fraction of
    the CPU of anyio's to_thread, which Starlette's run_in_threadpool uses. The request's
    context (its id, its span) goes along, so log lines and spans written in the thread
    carry them.
    """

    def __init__(self, engine: Engine, session_factory: sessionmaker[Session],
                 threads: int) -> None:
        self.engine = engine
        self.session_factory = session_factory
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="database")

    async def in_session(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(session, *args, **kwargs)` in a worker thread. Closing the session at the end
        rolls back anything not committed, e.g. after a refusal, and returns the connection."""
        return await self._in_thread(self._in_session, work, *args, **kwargs)

    async def on_connection(
        self, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(connection, *args, **kwargs)` in a worker thread. What the work did not
        commit is rolled back when the connection returns to the pool (its reset)."""
        return await self._in_thread(self._on_connection, work, *args, **kwargs)

    def close(self) -> None:
        """Wait for the work in flight (uvicorn has drained the requests by then)."""
        self.executor.shutdown(wait=True)

    async def _in_thread(self, function: Callable[..., T], *args, **kwargs) -> T:
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def _in_session(self, work, *args, **kwargs):
        with self.session_factory() as session:
            return work(session, *args, **kwargs)

    def _on_connection(self, work, *args, **kwargs):
        with self.engine.connect() as connection:
            return work(connection, *args, **kwargs)


def database(request: Request) -> Database:
    """The app's Database (made by main.py's lifespan)."""
    return request.app.state.database


def settings(request: Request) -> Settings:
    return request.app.state.settings


# Ids are bigint: a larger number is a 422, not a database error.
AccountIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Account id")]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "A unique value per intended movement (e.g. a UUID). A retry with the same key and "
            "body returns the first answer and moves nothing; the same key with another body "
            "is refused with 409 idempotency_conflict. Keys are kept for 24 hours."
        ),
    ),
]


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    request: Request,
    limit: Annotated[
        int | None, Query(ge=1, description="Page size; the default and cap are settings")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> PageParams:
    """`limit` (capped) and `cursor` query parameters of every list endpoint."""
    config = settings(request)
    return PageParams(min(limit or config.page_size_default, config.page_size_max), cursor)


PageDep = Annotated[PageParams, Depends(page_params)]
