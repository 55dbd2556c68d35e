"""The request being served, as the logs see it: its id and its route template.

The request layer (api/request_layer.py) sets it once per request; every log line written while
the request runs carries it (observability/logs.py), including lines written in the
threadpool, since a worker thread runs with a copy of the request's context.
"""

import os
import re
from contextvars import ContextVar
from dataclasses import dataclass

# A client's own id is kept when it is short and plain; anything else is cut down to what is.
MAX_LENGTH = 128
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._:@/+=-]")


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    route: str | None  # the route template, None when no route matches
    # Other libraries' log lines written for it so far (observability/log_limits.py caps them).
    third_party_lines: int = 0


CURRENT: ContextVar[RequestInfo | None] = ContextVar("bank_api_request", default=None)


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID, sanitised and bounded, or a new id when it gives none (or
    nothing usable). Sanitised rather than refused: a request is never failed over its id."""
    if header:
        cleaned = _NOT_ALLOWED.sub("", header)[:MAX_LENGTH]
        if cleaned:
            return cleaned
    return os.urandom(16).hex()  # 32 hex digits, like a uuid4's, without building a UUID


def current_request_id() -> str | None:
    info = CURRENT.get()
    return info.request_id if info is not None else None
