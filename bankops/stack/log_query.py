"""Loki's query_range over the API's log file: the native stack's answer to the log look-ups
compose's Loki serves, in Loki's shape, so one client serves both.

    GET /loki/api/v1/query_range?query={service="api"} |= "text"&start=&end=&limit=&direction=

Only the queries this project sends are understood: the selector `{service="api"}` (the API's
stream, as Alloy labels it in compose) and one or more line filters `|= "text"`, each a plain
substring every returned line must contain. Anything else is a 400 saying so. start and end
are Loki's (unix nanoseconds, or seconds with a fraction, or RFC3339; end exclusive; by
default the last hour), limit (default 100) and direction (backward, newest first, by default;
or forward) too. A line's time is its JSON `timestamp`; lines that are not JSON objects with
one are skipped. `GET /ready` answers 200 "ready".
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bankops.local_server import TEXT, LocalServer, QuietHandler

QUERY_PATH = "/loki/api/v1/query_range"
DEFAULT_LIMIT = 100  # Loki's
DEFAULT_RANGE_NS = 3600 * 10**9  # Loki's default start: an hour before end
UNSUPPORTED = ('the native stack answers only {service="api"} |= "text" queries: the API\'s '
               "log lines containing every text given")
SELECTOR = re.compile(r'\s*\{\s*service\s*=\s*"api"\s*\}')
# A double-quoted LogQL string (with backslash escapes) or a raw one in backquotes.
LINE_FILTER = re.compile(r'\s*\|=\s*(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`)')
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INTEGER = re.compile(r"-?[0-9]+")
SECONDS = re.compile(r"-?[0-9]+\.[0-9]*")


class BadRequest(ValueError):
    """A query or parameter the server does not take: a 400 with this message."""


def _unescape(quoted: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) not in ESCAPES:
            raise BadRequest(f"unsupported escape \\{match.group(1)} in {quoted!r}")
        return ESCAPES[match.group(1)]

    return re.sub(r"\\(.)", one, quoted)


def parse_query(query: str) -> list[str]:
    """The texts of the line filters of `{service="api"} |= "a" |= "b"`; BadRequest else."""
    selector = SELECTOR.match(query)
    if not selector:
        raise BadRequest(UNSUPPORTED)
    texts, position = [], selector.end()
    while match := LINE_FILTER.match(query, position):
        quoted, raw = match.groups()
        texts.append(raw if raw is not None else _unescape(quoted))
        position = match.end()
    if not texts or query[position:].strip():
        raise BadRequest(UNSUPPORTED)
    return texts


def _ns(moment: datetime) -> int:
    """Unix nanoseconds, exactly (a float timestamp would lose the microseconds)."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


def parse_time(value: str) -> int:
    """A time parameter as Loki reads it: integer nanoseconds (or seconds, at 10 digits or
    fewer), seconds with a fraction, or RFC3339; unix nanoseconds."""
    if SECONDS.fullmatch(value):
        return int(Decimal(value) * 10**9)
    if INTEGER.fullmatch(value):
        return int(value) * 10**9 if len(value.lstrip("-")) <= 10 else int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"cannot parse {value!r} as a time: unix nanoseconds, "
                         "seconds or RFC3339") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{value!r}: a time needs its offset (e.g. Z)")
    return _ns(moment)


def line_time(line: bytes) -> int | None:
    """The line's JSON `timestamp` in unix nanoseconds; None for any other line."""
    try:
        record = json.loads(line)
        return _ns(datetime.fromisoformat(record["timestamp"]))
    except (ValueError, TypeError, KeyError):
        return None


class Query:
    """The parameters of one query_range request, checked."""

    def __init__(self, params: dict[str, list[str]]) -> None:
        def one(name: str) -> str | None:
            values = params.get(name)
            return values[-1] if values else None

        self.filters = parse_query(one("query") or "")
        end = one("end")
        self.end = parse_time(end) if end else time.time_ns()
        start = one("start")
        self.start = parse_time(start) if start else self.end - DEFAULT_RANGE_NS
        try:
            self.limit = int(one("limit") or DEFAULT_LIMIT)
        except ValueError:
            raise BadRequest("limit: an integer") from None
        if self.limit <= 0:
            raise BadRequest("limit must be a positive integer")
        self.direction = (one("direction") or "backward").lower()
        if self.direction not in ("backward", "forward"):
            raise BadRequest("direction: backward or forward")

    def run(self, log_path: Path) -> list[list[str]]:
        """[[time in ns, line], ...] of the lines that match, in the asked order and number."""
        needles = [text.encode() for text in self.filters]
        found: list[tuple[int, str]] = []
        if log_path.exists():
            with log_path.open("rb") as lines:
                for line in lines:
                    # Substring tests first: most lines of a big file are never parsed.
                    if not all(needle in line for needle in needles):
                        continue
                    at = line_time(line)
                    if at is not None and self.start <= at < self.end:  # end: exclusive
                        found.append((at, line.rstrip(b"\r\n").decode(errors="replace")))
        # Stable sorts: lines of the same time keep the file's order (reversed backward).
        found.sort(key=lambda item: item[0])
        if self.direction == "backward":
            found.reverse()
        return [[str(at), line] for at, line in found[:self.limit]]


def answer(values: list[list[str]]) -> dict[str, Any]:
    """Loki's query_range body: one stream, the API's, or none."""
    streams = [{"stream": {"service": "api", "service_name": "api"}, "values": values}]
    return {"status": "success",
            "data": {"resultType": "streams", "result": streams if values else [],
                     "stats": {}}}


class LogQueryServer(LocalServer):
    """Listens on 127.0.0.1:`port` (0: any free port) and answers query_range over the log
    file at log_path, read anew at every query."""

    def __init__(self, log_path: Path, port: int = 0) -> None:
        self.log_path = Path(log_path)
        server = self

        class Handler(QuietHandler):
            def answer(self) -> tuple[int, str, bytes]:
                return server._get(self.path)

        super().__init__(Handler, port)

    def _get(self, url: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET."""
        parts = urlsplit(url)
        if parts.path != QUERY_PATH:
            return 404, TEXT, b"not found"
        try:
            values = Query(parse_qs(parts.query)).run(self.log_path)
        except BadRequest as error:
            return 400, TEXT, str(error).encode()
        return 200, "application/json", json.dumps(answer(values)).encode()
