"""Loki's query_range over the API's log file (bankops/stack/log_query.py), asked over HTTP as
Loki is asked: the API's own lines (tests/fixtures/api-log-lines.jsonl), one a second from a
known time, and a line that is not JSON among them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bankops.stack.log_query import LogQueryServer

FIXTURE = Path(__file__).parent / "fixtures" / "api-log-lines.jsonl"
QUERY_RANGE = "/loki/api/v1/query_range"
FIRST = datetime(2026, 12, 5, 22, 49, 26, 474149, tzinfo=UTC)
FIRST_NS = 1_796_510_966_474_149_000  # FIRST in unix nanoseconds
SECOND = 10**9
NOT_JSON = "Traceback (most recent call last): POST /transfers went wrong"
STREAM = {"service": "api", "service_name": "api"}


def fixture_lines() -> list[str]:
    """The fixture's lines, the i-th at FIRST + i seconds, as the API writes them."""
    lines = []
    for index, line in enumerate(FIXTURE.read_text().splitlines()):
        record = json.loads(line)
        record["timestamp"] = (FIRST + timedelta(seconds=index)).isoformat()
        lines.append(json.dumps(record))
    return lines


LINES = fixture_lines()


@pytest.fixture(scope="module")
def loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    log = tmp_path_factory.mktemp("logs") / "api.log"
    log.write_text("\n".join(LINES[:5] + [NOT_JSON] + LINES[5:]) + "\n")
    with LogQueryServer(log) as server, httpx.Client(base_url=server.endpoint) as client:
        yield client


def query(loki: httpx.Client, logql: str, **params: object) -> list[list[str]]:
    """The values of the one stream answered (none: [])."""
    params = {"start": FIRST_NS, "end": FIRST_NS + 3600 * SECOND} | params
    answer = loki.get(QUERY_RANGE, params={"query": logql, **params})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "streams"
    result = body["data"]["result"]
    if not result:
        return []
    [stream] = result
    assert stream["stream"] == STREAM
    return stream["values"]


def at(index: int) -> str:
    return str(FIRST_NS + index * SECOND)


def test_a_request_id_finds_its_line(loki: httpx.Client) -> None:
    values = query(loki, '{service="api"} |= "ecd6bb89664017a0ca40d151be3b1354"')
    assert values == [[at(5), LINES[5]]]


def test_every_filter_must_match(loki: httpx.Client) -> None:
    both = query(loki, '{service="api"}|="POST /accounts/"  |=  "409"')
    assert [line for _, line in both] == [LINES[6]]
    assert query(loki, '{ service = "api" } |= "POST /transfers" |= "GET"') == []


def test_backward_by_default_forward_when_asked(loki: httpx.Client) -> None:
    logql = '{service="api"} |= "\\"event\\": \\"request\\""'
    requests = [index for index, line in enumerate(LINES) if '"event": "request"' in line]
    assert len(requests) == 9
    backward = query(loki, logql)
    assert backward == [[at(i), LINES[i]] for i in reversed(requests)]
    forward = query(loki, logql, direction="forward")
    assert forward == [[at(i), LINES[i]] for i in requests]
    assert query(loki, logql, direction="forward", limit=2) == forward[:2]
    assert query(loki, logql, limit=2) == backward[:2]


def test_start_is_inclusive_end_exclusive(loki: httpx.Client) -> None:
    logql = '{service="api"} |= "request_id"'
    values = query(loki, logql, start=at(3), end=at(5), direction="forward")
    assert values == [[at(3), LINES[3]], [at(4), LINES[4]]]
    # Loki's other time forms: seconds with a fraction, RFC3339.
    seconds = f"{FIRST_NS // SECOND + 3}.{FIRST_NS % SECOND:09d}"
    assert query(loki, logql, start=seconds, end=at(5), direction="forward") == values
    rfc3339 = (FIRST + timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    assert query(loki, logql, start=at(3), end=rfc3339, direction="forward") == values
    assert query(loki, logql, start=at(100)) == []


def test_escaped_quotes_and_backslashes(loki: httpx.Client) -> None:
    values = query(loki, r'{service="api"} |= "\"status\": 409"')
    assert [line for _, line in values] == [LINES[6]]
    # A traceback's newlines are written `\n` in the line: LogQL's "\\n".
    values = query(loki, r'{service="api"} |= "\\n  File"')
    assert [line for _, line in values] == [LINES[12]]


def test_a_line_that_is_not_json_is_skipped(loki: httpx.Client) -> None:
    values = query(loki, '{service="api"} |= "POST /transfers"')
    assert values == [[at(5), LINES[5]]]


@pytest.mark.parametrize("logql", [
    '{service="api"}',
    '{service="api"} != "x"',
    '{service="api"} |~ "x"',
    '{service="scenarios"} |= "x"',
    '{service="api", level="ERROR"} |= "x"',
    '{service="api"} |= "x" | json',
    'sum(count_over_time({service="api"} |= "x" [5m]))',
    '{service="api"} |= "unterminated',
])
def test_other_queries_are_refused_with_the_reason(loki: httpx.Client, logql: str) -> None:
    answer = loki.get(QUERY_RANGE, params={"query": logql})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'the native stack answers only {service="api"} |= "text" queries' in answer.text


@pytest.mark.parametrize("params", [
    {"start": "yesterday"},
    {"end": "12:00"},
    {"limit": "0"},
    {"limit": "ten"},
    {"direction": "sideways"},
])
def test_bad_parameters_are_400_with_a_reason(loki: httpx.Client, params: dict) -> None:
    answer = loki.get(QUERY_RANGE, params={"query": '{service="api"} |= "x"', **params})
    assert answer.status_code == 400
    assert answer.text and "Traceback" not in answer.text


def test_ready_and_unknown_paths(loki: httpx.Client) -> None:
    ready = loki.get("/ready")
    assert (ready.status_code, ready.text) == (200, "ready")
    assert loki.get("/loki/api/v1/query").status_code == 404


def test_a_missing_log_file_has_no_lines(tmp_path: Path) -> None:
    with LogQueryServer(tmp_path / "api.log") as server:
        answer = httpx.get(f"{server.endpoint}{QUERY_RANGE}",
                           params={"query": '{service="api"} |= "x"'})
    assert answer.json()["data"]["result"] == []
