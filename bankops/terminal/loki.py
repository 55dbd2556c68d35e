"""The API's log lines that carry a given text, from Loki's HTTP API (query_range).

One LogQL shape only, `{service="api"} |= "<text>"` (the API's stream, a plain substring
filter), so the native stack can answer it over its log file (bankops/stack/log_query.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bankops.terminal.backends import Backend, BackendError, setting

STREAM = '{service="api"}'
LIMIT = 1000  # lines per look-up: a request has a handful
TIMEOUT_S = 60.0  # a line filter over a day of a busy API's lines takes Loki a while


@dataclass(frozen=True)
class LogLine:
    time_ns: int
    raw: str
    fields: dict[str, Any]  # the JSON line's fields; {"message": raw} for a line that is not

    def get(self, name: str) -> Any:
        return self.fields.get(name)


class Loki(Backend):
    def __init__(self, url: str | None = None) -> None:
        super().__init__("Loki", url or setting("LOKI_URL"), TIMEOUT_S)

    def lines_with(self, text: str, start_ns: int, end_ns: int) -> list[LogLine]:
        """Lines of the API's stream containing `text`, oldest first."""
        query = f"{STREAM} |= {json.dumps(text)}"
        body = self.get_json("/loki/api/v1/query_range", {
            "query": query, "start": str(start_ns), "end": str(end_ns), "limit": str(LIMIT),
            "direction": "forward"})
        if body.get("status") != "success":
            raise BackendError(f"Loki refused {query!r}: {body}")
        # A value is [time, line], with a third member (its metadata) when Loki is asked to
        # categorise labels.
        lines = [_line(int(value[0]), value[1]) for stream in body["data"]["result"]
                 for value in stream["values"]]
        return sorted(lines, key=lambda line: line.time_ns)


def _line(time_ns: int, raw: str) -> LogLine:
    try:
        fields = json.loads(raw)
    except ValueError:
        fields = None
    return LogLine(time_ns, raw, fields if isinstance(fields, dict) else {"message": raw})
