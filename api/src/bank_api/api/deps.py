"""Dependencies shared by the routers."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy.orm import Session

from bank_api.core.config import Settings
from bank_api.schemas import MAX_ID


def get_session(request: Request) -> Iterator[Session]:
    # Closing the session rolls back anything not committed, e.g. after a refusal.
    with request.app.state.session_factory() as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
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


class PageParams:
    """`limit` (capped) and `cursor` query parameters of every list endpoint."""

    def __init__(
        self,
        request: Request,
        limit: Annotated[
            int | None, Query(ge=1, description="Page size; the default and cap are settings")
        ] = None,
        cursor: Annotated[
            str | None, Query(max_length=200, description="next_cursor of the previous page")
        ] = None,
    ) -> None:
        settings: Settings = request.app.state.settings
        self.limit = min(limit or settings.page_size_default, settings.page_size_max)
        self.cursor = cursor


PageDep = Annotated[PageParams, Depends()]
