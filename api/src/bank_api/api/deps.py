"""Dependencies shared by the routers.

Handlers are `async def` and hand their database work to `Database.run`, which runs it in the
threadpool in one go: one thread hop per request. (A plain `def` handler with a session
dependency costs four hops: entering and leaving the dependency, the handler, and validating
the response, each about 0.15 ms of CPU; bankops/bench/PROFILE.md measured them.) The
dependencies below are `async def` for the same reason: they do no I/O, so they need no thread.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Concatenate, ParamSpec, TypeVar

from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from bank_api.core.config import Settings
from bank_api.schemas import MAX_ID

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """Runs units of work, each in its own session, off the event loop."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    async def run(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(session, *args, **kwargs)` in a worker thread. Closing the session at the end
        rolls back anything not committed, e.g. after a refusal, and returns the connection."""
        return await run_in_threadpool(self._run, work, *args, **kwargs)

    def _run(self, work, *args, **kwargs):
        with self.session_factory() as session:
            return work(session, *args, **kwargs)


async def get_database(request: Request) -> Database:
    return request.app.state.database


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

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
    settings: SettingsDep,
    limit: Annotated[
        int | None, Query(ge=1, description="Page size; the default and cap are settings")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> PageParams:
    """`limit` (capped) and `cursor` query parameters of every list endpoint."""
    return PageParams(min(limit or settings.page_size_default, settings.page_size_max), cursor)


PageDep = Annotated[PageParams, Depends(page_params)]
