"""Logs, traces and exemplars of a real uvicorn server, checked on the wire.

The server writes JSON log lines (LOG_FORMAT=json) and exports its spans over OTLP/HTTP to a
receiver in this process (bankops.otlp_receiver, decoded with opentelemetry-proto: the SDK is
not mocked). For the same request, the X-Request-ID, the problem body, the request's one log
line (the canonical line: its outcome in fields), the span and the exemplar on /metrics must
all agree.
"""

import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bank_api.observability import request_record
from bankops.otlp_receiver import OtlpReceiver, Span
from bankops.processes import Service, free_port
from helpers import LiveServer, assert_problem, open_account

ADMIN_TOKEN = "test-admin-token-" + uuid.uuid4().hex
TRANSACTIONS = "/accounts/{account_id}/transactions"
TRACED_ENV = {
    "LOG_FORMAT": "json",
    "OTEL_SERVICE_NAME": "bank-api-test",
    "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms, not 5 s
    "ADMIN_TOKEN": ADMIN_TOKEN,
}
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
LOG_FIXTURE = Path(__file__).parents[2] / "tests" / "fixtures" / "api-log-lines.jsonl"
EXEMPLAR = re.compile(r'^([a-z_]+)\{(.*)\} \S+ # \{trace_id="([0-9a-f]{32})"\}', re.MULTILINE)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as otlp:
        yield otlp


@pytest.fixture(scope="module")
def server(database_url: str, receiver: OtlpReceiver) -> Iterator[LiveServer]:
    live = LiveServer(database_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, **TRACED_ENV)
    yield live
    live.stop()


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def log_lines(server: LiveServer) -> list[dict]:
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def lines_of(server: LiveServer, request_id: str) -> list[dict]:
    """The request's log lines, once its request line (written when it ends) is there."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in log_lines(server) if line.get("request_id") == request_id]
        if any(line.get("event") == "request" for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def wait_for_trace(receiver: OtlpReceiver, trace_id: str, root_name: str) -> list[Span]:
    """The trace's spans, once its server span (the last to end) has arrived."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = receiver.traces().get(trace_id, [])
        if any(span.name == root_name and span.kind == "SPAN_KIND_SERVER" for span in spans):
            return spans
        time.sleep(0.05)
    raise AssertionError(f"no server span {root_name!r} for trace {trace_id}")


def request_line(server: LiveServer, request_id: str) -> dict:
    """The request's one line: no other line is written for a request that went well or was
    refused."""
    [line] = lines_of(server, request_id)
    assert line["event"] == "request" and line["logger"] == "bank_api.request", line
    assert line["request_id"] == request_id
    return line


def trace_of(server: LiveServer, request_id: str) -> str:
    trace_ids = {line["trace_id"] for line in lines_of(server, request_id)}
    assert len(trace_ids) == 1, trace_ids
    return trace_ids.pop()


def server_span(spans: list[Span]) -> Span:
    [root] = [span for span in spans if span.kind == "SPAN_KIND_SERVER"]
    assert root.parent_span_id == ""
    return root


def descendants(span: Span) -> list[Span]:
    return [span] + [d for child in span.children for d in descendants(child)]


def test_a_credit_is_one_trace_with_the_ledger_steps_and_their_sql(
        api: httpx.Client, server: LiveServer, receiver: OtlpReceiver) -> None:
    account = open_account(api)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    response = api.post(f"/accounts/{account['id']}/transactions",
                        json={"direction": "credit", "amount": 500}, headers=key)
    assert response.status_code == 201
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # generated: the client sent none

    spans = wait_for_trace(receiver, trace_of(server, request_id), f"POST {TRANSACTIONS}")
    root = server_span(spans)
    assert root.resource["service.name"] == "bank-api-test"
    assert root.attributes["http.route"] == TRANSACTIONS
    assert root.attributes["http.response.status_code"] == 201
    assert root.attributes["http.request.id"] == request_id
    assert root.status == "STATUS_CODE_UNSET"
    # The outcome, the same on the span and on the line.
    line = request_line(server, request_id)
    outcome = {"operation": "credit", "outcome": "moved", "account_id": account["id"],
               "amount": 500, "currency": account["currency"]}
    assert {key: line.get(key) for key in outcome} == outcome
    assert {key: root.attributes.get(key) for key in (
        "bank.operation", "bank.outcome", "bank.account.id", "bank.amount", "bank.currency")} == {
        "bank.operation": "credit", "bank.outcome": "moved", "bank.account.id": account["id"],
        "bank.amount": 500, "bank.currency": account["currency"]}
    assert line["span_id"] == root.span_id and line["status"] == 201
    assert line["response_bytes"] == len(response.content) > 0
    assert line["request_bytes"] == len(response.request.content) > 0
    steps = {child.name: child for child in root.children}
    assert {"idempotency claim", "lock accounts", "write ledger"} <= set(steps)
    sql = {name: " ".join(d.attributes.get("db.statement", "") for d in descendants(step)[1:])
           for name, step in steps.items()}
    assert "pg_advisory_xact_lock" in sql["idempotency claim"]
    assert "FOR UPDATE" in sql["lock accounts"]
    assert "INSERT INTO ledger_entries" in sql["write ledger"]
    # Every span of the trace hangs off the server span; the database spans are clients.
    assert all(span in descendants(root) for span in spans)
    assert all(span.kind == "SPAN_KIND_CLIENT" for span in spans
               if "db.statement" in span.attributes)

    # The retry with the same key: a replay, a field of its one line and an event on its span.
    retry = api.post(f"/accounts/{account['id']}/transactions",
                     json={"direction": "credit", "amount": 500}, headers=key)
    assert retry.headers["Idempotent-Replayed"] == "true"
    retry_id = retry.headers["X-Request-ID"]
    assert retry_id != request_id
    line = request_line(server, retry_id)
    assert (line["operation"], line["outcome"], line["status"]) == ("credit", "replayed", 201)
    assert "amount" not in line  # nothing moved
    root = server_span(wait_for_trace(receiver, trace_of(server, retry_id), f"POST {TRANSACTIONS}"))
    assert ("idempotent replay", {}) in root.events
    assert root.attributes["bank.outcome"] == "replayed"


def test_a_transfer_locks_both_accounts_and_writes_once(
        api: httpx.Client, server: LiveServer, receiver: OtlpReceiver) -> None:
    source, destination = open_account(api), open_account(api)
    api.post(f"/accounts/{source['id']}/transactions", json={"direction": "credit", "amount": 90})
    response = api.post("/transfers", json={"source_account_id": source["id"],
                                            "destination_account_id": destination["id"],
                                            "amount": 40})
    assert response.status_code == 201
    spans = wait_for_trace(receiver, trace_of(server, response.headers["X-Request-ID"]),
                           "POST /transfers")
    root = server_span(spans)
    assert [child.name for child in root.children] == ["lock accounts", "write ledger"]
    [write] = [d for d in descendants(root.children[1])[1:]]
    assert "INSERT INTO transfers" in write.attributes["db.statement"]
    # Statements carry placeholders, never the values sent.
    assert "%(" in write.attributes["db.statement"]


def test_a_refusal_is_an_event_on_an_unerrored_span_and_everything_agrees(
        api: httpx.Client, server: LiveServer, receiver: OtlpReceiver) -> None:
    account = open_account(api)
    request_id = f"client-chosen.{uuid.uuid4().hex}"
    response = api.post(f"/accounts/{account['id']}/transactions",
                        json={"direction": "debit", "amount": 10_000},
                        headers={"X-Request-ID": request_id})
    body = assert_problem(response, 409, "insufficient_funds")
    # The client's id comes back in the header and the problem body.
    assert response.headers["X-Request-ID"] == request_id
    assert body["request_id"] == request_id

    # The request's one line: the refusal in its fields, the same request and trace ids.
    line = request_line(server, request_id)
    assert {key: line[key] for key in (
        "level", "method", "route", "status", "operation", "outcome", "code", "account_id",
        "amount")} == {
        "level": "INFO", "method": "POST", "route": TRANSACTIONS, "status": 409,
        "operation": "debit", "outcome": "refused", "code": "insufficient_funds",
        "account_id": account["id"], "amount": 10_000}
    assert line["code"] == body["code"]
    assert line["duration_ms"] > 0 and line["client"] == "127.0.0.1"
    trace_id = trace_of(server, request_id)
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)

    # The span: the same trace, the refusal as an event, not an error.
    root = server_span(wait_for_trace(receiver, trace_id, f"POST {TRANSACTIONS}"))
    assert root.attributes["http.request.id"] == request_id
    assert root.status == "STATUS_CODE_UNSET"
    assert ("refused", {"bank.refusal.code": "insufficient_funds"}) in root.events
    assert root.attributes["bank.outcome"] == "refused"
    assert root.attributes["bank.problem.code"] == "insufficient_funds"
    assert line["span_id"] == root.span_id
    assert {span.status for span in descendants(root)} == {"STATUS_CODE_UNSET"}

    # The exemplar: the bucket this request's latency fell in points at its trace (other
    # buckets at the route's earlier requests, each a trace the receiver has).
    metrics = api.get("/metrics", headers={"Accept": OPENMETRICS})
    assert metrics.headers["content-type"].startswith("application/openmetrics-text")
    exemplars = {(name, labels): trace for name, labels, trace in
                 EXEMPLAR.findall(metrics.text)}
    route_exemplars = {trace for (name, labels), trace in exemplars.items()
                       if name == "http_request_duration_seconds_bucket"
                       and f'handler="{TRANSACTIONS}"' in labels and 'method="POST"' in labels}
    assert trace_id in route_exemplars
    assert route_exemplars <= set(receiver.traces())


def test_a_callers_trace_context_is_continued_and_its_sampling_followed(
        api: httpx.Client, server: LiveServer, receiver: OtlpReceiver) -> None:
    """W3C traceparent: a sampled caller's trace goes on in the API (same trace id, the
    caller's span as parent); an unsampled caller's is not traced here either."""
    account = open_account(api)
    path = f"/accounts/{account['id']}"
    caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    request_id = uuid.uuid4().hex
    answer = api.get(path, headers={"traceparent": f"00-{caller_trace}-{caller_span}-01",
                                    "X-Request-ID": request_id})
    assert answer.status_code == 200
    [root] = [span for span in wait_for_trace(receiver, caller_trace,
                                              "GET /accounts/{account_id}")
              if span.kind == "SPAN_KIND_SERVER"]
    assert root.parent_span_id == caller_span
    assert root.attributes["http.request.id"] == request_id
    assert root.attributes["http.route"] == "/accounts/{account_id}"
    assert root.attributes["url.path"] == path
    assert root.attributes["http.response.status_code"] == 200
    assert trace_of(server, request_id) == caller_trace

    unsampled_trace, unsampled_id = uuid.uuid4().hex, uuid.uuid4().hex
    api.get(path, headers={"traceparent": f"00-{unsampled_trace}-{caller_span}-00",
                           "X-Request-ID": unsampled_id})
    assert all("trace_id" not in line for line in lines_of(server, unsampled_id))
    time.sleep(0.3)  # the exporter's schedule is 50 ms
    assert unsampled_trace not in receiver.traces()


def test_an_unknown_account_is_no_error_on_any_span(
        api: httpx.Client, server: LiveServer, receiver: OtlpReceiver) -> None:
    response = api.post("/accounts/999999/transactions",
                        json={"direction": "credit", "amount": 1})
    assert_problem(response, 404, "not_found")
    spans = wait_for_trace(receiver, trace_of(server, response.headers["X-Request-ID"]),
                           f"POST {TRANSACTIONS}")
    root = server_span(spans)
    assert [child.name for child in root.children] == ["lock accounts"]
    assert {span.status for span in spans} == {"STATUS_CODE_UNSET"}
    assert not [event for span in spans for event in span.events]
    line = request_line(server, response.headers["X-Request-ID"])
    assert (line["operation"], line["outcome"], line["code"]) == ("credit", "failed", "not_found")
    assert root.attributes["bank.outcome"] == "failed"


def test_a_5xx_and_an_exception_mark_their_spans_as_errors(
        api: httpx.Client, server: LiveServer, receiver: OtlpReceiver, database_url: str,
        tmp_path: Path) -> None:
    account = open_account(api)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    api.put("/admin/faults", headers=auth, json={"error_rate": 1, "routes": [TRANSACTIONS]})
    try:
        response = api.get(f"/accounts/{account['id']}/transactions")
    finally:
        api.delete("/admin/faults", headers=auth)
    assert_problem(response, 500, "fault_injected")
    assert request_line(server, response.headers["X-Request-ID"])["code"] == "fault_injected"
    root = server_span(wait_for_trace(receiver, trace_of(server, response.headers["X-Request-ID"]),
                                      f"GET {TRANSACTIONS}"))
    assert root.status == "STATUS_CODE_ERROR"

    # A route that raises, on the same app served by uvicorn.
    port = free_port()
    raising = Service(
        "raising-app", [sys.executable, "-m", "uvicorn", "raising_app:create", "--factory",
                        "--port", str(port), "--no-access-log"],
        cwd=Path(__file__).parent, log_path=tmp_path / "server.log",
        env={"DATABASE_URL": database_url, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        | TRACED_ENV,
        ready_url=f"http://127.0.0.1:{port}/health/live", timeout=60)
    raising.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/accounts/1/explode")
    finally:
        raising.stop()
    body = assert_problem(response, 500, "internal_error")
    request_id = response.headers["X-Request-ID"]
    assert body["request_id"] == request_id
    assert body["instance"] == "/accounts/1/explode"
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()
             if line.startswith("{")]
    [error] = [line for line in lines if line.get("event") == "unhandled_error"]
    assert error["level"] == "ERROR" and error["request_id"] == request_id
    assert "RuntimeError: a bug, on purpose" in error["exc_info"]
    # Beside it, the request's own line, as for any request: a 500, and its problem's code.
    [request] = [line for line in lines if line.get("event") == "request"]
    assert (request["request_id"], request["status"], request["code"]) == (
        request_id, 500, "internal_error")
    # Logged once, with its context: not a second time by the server.
    assert sum("a bug, on purpose" in json.dumps(line) for line in lines) == 1
    root = server_span(wait_for_trace(receiver, error["trace_id"],
                                      "GET /accounts/{account_id}/explode"))
    assert root.status == "STATUS_CODE_ERROR"
    assert [name for name, _ in root.events] == ["exception"]


def test_health_checks_and_scrapes_make_no_spans(
        api: httpx.Client, server: LiveServer, receiver: OtlpReceiver) -> None:
    open_account(api)  # a traced request, to know when the exports have caught up
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert api.get(path).status_code == 200
    marker = api.get("/accounts/999999")
    wait_for_trace(receiver, trace_of(server, marker.headers["X-Request-ID"]),
                   "GET /accounts/{account_id}")
    spans = receiver.received()
    assert not [span for span in spans
                if str(span.attributes.get("url.path", "")).startswith(("/health", "/metrics"))]
    # No orphan database span either (the readiness check runs a query).
    assert all(span.parent_span_id for span in spans if span.kind == "SPAN_KIND_CLIENT")


def test_a_long_or_odd_request_id_is_cut_to_a_safe_one(api: httpx.Client) -> None:
    response = api.get("/health/live", headers={"X-Request-ID": "a b\"c<script>" + "x" * 500})
    assert response.headers["X-Request-ID"] == "abcscript" + "x" * 119


def test_logs_hold_no_secret_token_or_body(
        api: httpx.Client, server: LiveServer) -> None:
    account = open_account(api, first_name="Zebulon-Unlogged", address="77 Hidden Lane")
    key = f"key-{uuid.uuid4().hex}"
    description = f"description-{uuid.uuid4().hex}"
    response = api.post(f"/accounts/{account['id']}/transactions",
                        json={"direction": "credit", "amount": 123_456,
                              "description": description},
                        headers={"Idempotency-Key": key})
    assert response.status_code == 201
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert api.put("/admin/faults", headers=auth, json={"latency_ms": 1}).status_code == 200
    assert api.delete("/admin/faults", headers=auth).status_code == 200
    assert api.get("/admin/faults",
                   headers={"Authorization": "Bearer wrong-token-zzz"}).status_code == 401
    log = server.log()
    for value in (ADMIN_TOKEN, "wrong-token-zzz", key, description, "Zebulon-Unlogged",
                  "77 Hidden Lane"):
        assert value not in log
    # What the request's line does say about that credit: the outcome, in fields.
    moved = request_line(server, response.headers["X-Request-ID"])
    assert (moved["operation"], moved["outcome"], moved["amount"], moved["currency"]) == (
        "credit", "moved", 123_456, "EUR")
    # And the fault switch changes, as warnings.
    assert [line["event"] for line in log_lines(server)
            if line.get("event") == "fault_switch_changed"][-2:] == ["fault_switch_changed"] * 2


def line_kind(line: dict) -> tuple:
    """Lines of one kind have the same fields: the same logger and event, a trace or not, and
    for a request's line the same outcome fields."""
    outcome = frozenset(line) & set(request_record.OUTCOME_FIELDS)
    return line["logger"], line.get("event"), "trace_id" in line, outcome


def test_the_log_fixture_is_what_the_server_writes(server: LiveServer) -> None:
    """tests/fixtures/api-log-lines.jsonl (real lines, checked against Alloy's pipeline and
    Grafana's derived field in tests/test_datasources.py, and by the dashboards' LogQL checks)
    has the fields the server writes now, line kind by line kind.

    REGENERATE_LOG_FIXTURE=1 writes it anew from this module's server: one line of each kind
    it wrote (the unhandled error's line, written by raising_app, is kept)."""
    written = {}
    for line in log_lines(server):
        written.setdefault(line_kind(line), line)
    if os.environ.get("REGENERATE_LOG_FIXTURE") == "1":
        kept = [line for line in LOG_FIXTURE.read_text().splitlines()
                if json.loads(line).get("event") == "unhandled_error"]
        LOG_FIXTURE.write_text("".join(json.dumps(line) + "\n" for line in written.values())
                               + "".join(line + "\n" for line in kept))
    fixture = [json.loads(line) for line in LOG_FIXTURE.read_text().splitlines() if line]
    assert {line_kind(line)[:2] for line in fixture} >= {
        ("bank_api.request", "request"), ("bank_api.events", "fault_switch_changed")}
    for line in fixture:
        if line.get("event") == "unhandled_error":  # written by raising_app, checked above
            continue
        assert line_kind(line) in written, line
        assert set(line) == set(written[line_kind(line)]), line
