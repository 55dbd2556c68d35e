"""Logs, traces and exemplars of a real uvicorn server, checked on the wire.

The server writes JSON log lines (LOG_FORMAT=json) and exports its spans over OTLP/HTTP to a
receiver in this process (bankops.otlp_receiver, decoded with opentelemetry-proto: the SDK is
not mocked). For the same request, the X-Request-ID, the problem body, the log line, the span
and the exemplar on /metrics must all agree.
"""

import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
    """The request's log lines, once its request line (written after the answer) is there."""
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

    # The retry with the same key: a replay, logged and marked on its span.
    retry = api.post(f"/accounts/{account['id']}/transactions",
                     json={"direction": "credit", "amount": 500}, headers=key)
    assert retry.headers["Idempotent-Replayed"] == "true"
    retry_id = retry.headers["X-Request-ID"]
    assert retry_id != request_id
    assert {line["event"] for line in lines_of(server, retry_id)} == {"replayed", "request"}
    root = server_span(wait_for_trace(receiver, trace_of(server, retry_id), f"POST {TRANSACTIONS}"))
    assert ("idempotent replay", {}) in root.events


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

    # The log lines: the request line and the refusal, with the same request and trace ids.
    lines = lines_of(server, request_id)
    assert {line["event"] for line in lines} == {"refused", "request"}
    [refused] = [line for line in lines if line["event"] == "refused"]
    assert refused["code"] == "insufficient_funds" and refused["operation"] == "debit"
    assert refused["route"] == TRANSACTIONS and refused["level"] == "INFO"
    [request] = [line for line in lines if line["event"] == "request"]
    assert {key: request[key] for key in ("logger", "method", "route", "status")} == {
        "logger": "bank_api.access", "method": "POST", "route": TRANSACTIONS, "status": 409}
    assert request["duration_ms"] > 0 and request["client"] == "127.0.0.1"
    trace_id = trace_of(server, request_id)
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)

    # The span: the same trace, the refusal as an event, not an error.
    root = server_span(wait_for_trace(receiver, trace_id, f"POST {TRANSACTIONS}"))
    assert root.attributes["http.request.id"] == request_id
    assert root.status == "STATUS_CODE_UNSET"
    assert ("refused", {"bank.refusal.code": "insufficient_funds"}) in root.events
    assert refused["span_id"] in {span.span_id for span in descendants(root)}
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
    # What the lines do say about that credit: the event, in fields.
    [moved] = [line for line in lines_of(server, response.headers["X-Request-ID"])
               if line["event"] == "money_moved"]
    assert (moved["operation"], moved["amount"], moved["currency"]) == ("credit", 123_456, "EUR")
    # And the fault switch changes, as warnings.
    assert [line["event"] for line in log_lines(server)
            if line.get("event") == "fault_switch_changed"][-2:] == ["fault_switch_changed"] * 2


def test_the_log_fixture_is_what_the_server_writes(server: LiveServer) -> None:
    """tests/fixtures/api-log-lines.jsonl (real lines, checked against Alloy's pipeline and
    Grafana's derived field in tests/test_datasources.py) has the fields the server writes
    now, line kind by line kind."""
    def kind(line: dict) -> tuple:
        return line["logger"], line.get("event"), "trace_id" in line

    written = {kind(line): set(line) for line in log_lines(server)}
    fixture = [json.loads(line) for line in LOG_FIXTURE.read_text().splitlines() if line]
    for line in fixture:
        if line.get("event") == "unhandled_error":  # written by raising_app, checked above
            continue
        assert set(line) == written.get(kind(line)), line
