"""/metrics: the HTTP, domain, database and process metrics, on a real server."""

import os
import re
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_fastapi_instrumentator import routing
from sqlalchemy import text
from starlette.requests import HTTPConnection

from bank_api.api.route_index import RouteIndex, route_index
from bank_api.main import create_app
from helpers import LiveServer, make_settings, open_account


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample on /metrics as {(name, labels): value}."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_metrics_describe_the_traffic(live_server):
    with httpx.Client(base_url=live_server.url) as http:
        account = open_account(http)
        tx = f"/accounts/{account['id']}/transactions"
        http.post(tx, json={"direction": "credit", "amount": 700}, headers={"Idempotency-Key": "a"})
        http.post(tx, json={"direction": "credit", "amount": 700}, headers={"Idempotency-Key": "a"})
        http.post(tx, json={"direction": "debit", "amount": 9_999})
        for _ in range(3):
            http.get(f"/accounts/{account['id']}")
        http.get("/no/such/path/123")
        http.get("/metrics")
    samples = scrape(live_server.url)
    names = {name for name, _ in samples}

    assert value(samples, "http_requests_total", handler="/accounts/{account_id}", method="GET",
                 status="200") == 3
    assert value(samples, "http_requests_total", handler="none", status="404") == 1
    assert not [ls for n, ls in samples if ("handler", "/metrics") in ls], "/metrics is excluded"
    buckets = {dict(ls)["le"] for n, ls in samples
               if n == "http_request_duration_seconds_bucket"}
    assert {"0.005", "0.025", "0.1", "0.5", "2.5"} <= buckets, "fine latency buckets"
    assert {"http_request_duration_highr_seconds_bucket", "http_request_size_bytes_sum",
            "http_response_size_bytes_sum", "http_requests_inprogress"} <= names
    assert ("http_requests_inprogress", frozenset({("method", "GET"), ("handler", "none")})) \
        in samples, "unknown paths are one `none` handler in flight too"
    assert not [n for n in names if n.endswith("_created")], "no _created series"

    assert value(samples, "bank_operations_total", operation="credit", outcome="ok") == 1
    assert value(samples, "bank_operations_total", operation="credit", outcome="replayed") == 1
    assert value(samples, "bank_operations_total", operation="debit",
                 outcome="insufficient_funds") == 1
    assert value(samples, "bank_money_moved_minor_units_total", currency="EUR") == 700
    assert value(samples, "bank_accounts_opened_total", currency="EUR") == 1
    assert value(samples, "bank_operation_amount_minor_units_count", operation="credit") == 1

    assert value(samples, "bank_db_pool_size") == 10
    assert value(samples, "bank_db_pool_checked_out") == 0, "nothing in flight after the requests"
    assert value(samples, "bank_db_pool_idle") >= 1
    assert value(samples, "bank_db_query_duration_seconds_count", statement="select") > 0
    assert value(samples, "bank_db_query_duration_seconds_count", statement="with") > 0, \
        "a money movement's one-statement write"
    # Pins TimedQueuePool's use of QueuePool._do_get (observability/db_metrics.py).
    assert value(samples, "bank_db_pool_checkout_seconds_count") > 0
    assert value(samples, "bank_build_info") == 1
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names


def test_the_route_is_matched_once_per_request(database_url, monkeypatch):
    """The HTTP metrics, the fault switch, the log line and the span share one route match
    (bank_api.api.route_index), the fault switch on or off."""
    matches = []
    real = RouteIndex.name
    monkeypatch.setattr(RouteIndex, "name",
                        lambda self, scope: matches.append(1) or real(self, scope))
    token = {"Authorization": "Bearer a-real-admin-token-for-tests"}
    settings = make_settings(database_url, admin_token=token["Authorization"][7:])
    with TestClient(create_app(settings)) as client:
        account = open_account(client)
        client.put("/admin/faults", headers=token, json={"latency_ms": 1})  # switch on
        for path in (f"/accounts/{account['id']}", "/no/such/path", "/accounts",
                     f"/accounts/{account['id']}/"):
            matches.clear()
            assert client.get(path, follow_redirects=False).status_code in (200, 307, 404)
            assert len(matches) == 1, path
        exposition = client.get("/metrics").text
        client.delete("/admin/faults", headers=token)
    samples = {(sample.name, frozenset(sample.labels.items()))
               for family in text_string_to_metric_families(exposition)
               for sample in family.samples}
    assert ("http_requests_total", frozenset({("method", "GET"), ("status", "200"),
                                              ("handler", "/accounts/{account_id}")})) in samples
    assert ("http_requests_total", frozenset({("method", "GET"), ("status", "404"),
                                              ("handler", "none")})) in samples
    # A trailing slash is redirected; its raw path, an account id in it, is no label.
    assert ("http_requests_total", frozenset({("method", "GET"), ("status", "307"),
                                              ("handler", "none")})) in samples
    assert not [labels for _, labels in samples if any(
        name == "handler" and re.search(r"\d", value) for name, value in labels)]


def _http_scope(app, method: str, path: str, root_path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": root_path,
            "headers": [], "query_string": b"", "app": app}


def _the_libraries(scope: dict) -> str | None:
    return routing.get_route_name(HTTPConnection(dict(scope)), should_include_root_path=False)


@pytest.mark.parametrize("root_path", ["", "/bank"])
def test_route_names_are_the_instrumentators(database_url, root_path):
    """The route index names a request as prometheus-fastapi-instrumentator's get_route_name
    does (the metric labels): every route of the app with every method (a full or a partial
    match), the docs' static mount, paths no route matches, with the root path in the path or
    not; except that a path only a redirect answers (its trailing slash added or removed) is
    no route, where the library names it by the raw path, which would put an id in a label."""
    app = create_app(make_settings(database_url))
    index = route_index(app)
    concrete = {re.sub(r"\{[^}]+\}", "7", template) for template in index.templates}
    paths = {path + tail for path in concrete for tail in ("", "/", "/x", "/x/")} | {
        "", "/", "/nope", "/accounts/7/x/y", "/docs/assets/swagger-ui.css", "/bank"}
    methods = {method for path in concrete for method in index.allowed_methods(path)} | {
        "GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "BREW"}
    cases = {(method, full_path) for method in methods for path in paths
             for full_path in (root_path + path, path)}  # the root path in the path, or not
    named, redirected = set(), 0
    for method, full_path in cases:
        scope = _http_scope(app, method, full_path, root_path)
        ours, library = index.name(dict(scope)), _the_libraries(scope)
        if ours == library:
            named.add(ours)
            continue
        # The one difference: the library's fallback for a path only a redirect answers.
        assert ours is None and library == full_path, (method, full_path, library, ours)
        toggled = full_path[:-1] if full_path.endswith("/") else full_path + "/"
        assert index.name({**scope, "path": toggled}) is not None, (method, full_path)
        redirected += 1
    assert named == index.templates | {None}, "every route is named, and some path is none"
    assert redirected, "the redirect case was met"
    scope = _http_scope(app, "DELETE", root_path + "/accounts/7", root_path)  # a 405: partial
    assert index.name(scope) == _the_libraries(scope) == "/accounts/{account_id}"
    scope = _http_scope(app, "GET", root_path + "/docs/assets/swagger-ui.css", root_path)
    assert index.name(scope) == _the_libraries(scope) == "/docs/assets"


@pytest.mark.slow
def test_label_sets_do_not_grow_with_data(live_server, db):
    """Thousands of accounts and movements later, /metrics has the same series."""
    def traffic(http, account_ids) -> None:
        for account_id in account_ids:
            url = f"/accounts/{account_id}"
            http.post(f"{url}/transactions", json={"direction": "credit", "amount": 5})
            http.post(f"{url}/transactions", json={"direction": "debit", "amount": 3})
            http.post(f"{url}/transactions", json={"direction": "debit", "amount": 10**6})
            http.get(url)
            http.get(f"{url}/transactions")
            http.get(f"/accounts/{account_id + 10_000_000}")  # unknown: 404

    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        first = [open_account(http)["id"] for _ in range(3)]
        traffic(http, first)  # every route, status and outcome once
        before = set(scrape(live_server.url))
        # 5,000 more accounts with a deposit each, written in SQL to keep the test short,
        # then 400 of them used through the API: 2,400 requests on distinct ids.
        with db.begin() as connection:
            connection.execute(text("""
                INSERT INTO accounts (first_name, last_name, address, currency, balance)
                SELECT 'Load', 'Test ' || n, n || ' Main St', 'EUR', 1000
                FROM generate_series(1, 5000) AS n"""))
            connection.execute(text("""
                INSERT INTO ledger_entries (account_id, direction, amount, balance_after)
                SELECT id, 'credit', 1000, 1000 FROM accounts WHERE first_name = 'Load'"""))
            ids = connection.execute(text(
                "SELECT id FROM accounts WHERE first_name = 'Load' ORDER BY random() LIMIT 400"
            )).scalars().all()
        traffic(http, ids)
        after = set(scrape(live_server.url))
    assert len(after) == len(before), sorted(after - before)[:10]
    for _, labels in after:
        for _, label_value in labels:
            assert not re.fullmatch(r"/accounts/\d+.*", label_value), "raw path in a label"


@pytest.fixture
def multiprocess_server(database_url, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_99999.db").write_bytes(b"left over from an earlier run")
    server = LiveServer(database_url, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    yield server, directory
    server.stop()


@pytest.mark.slow
def test_workers_start_when_the_metrics_folder_is_not_made_yet(database_url, tmp_path):
    """A folder named but not made (the benchmark names one per server): bank-api makes it
    before any metric is created in any process."""
    directory = tmp_path / "not-made-yet"
    server = LiveServer(database_url, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    try:
        assert "http_requests_total" in httpx.get(f"{server.url}/metrics", timeout=10).text
        assert directory.is_dir()
    finally:
        server.stop()


def worker_pids(server: LiveServer) -> set[int]:
    """uvicorn's worker processes (not multiprocessing's resource tracker)."""
    pids = set()
    for child in psutil.Process(server.process.pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:  # a worker that just died (zombie until reaped)
            continue
    return pids


@pytest.mark.slow
def test_counts_are_summed_across_worker_processes(multiprocess_server):
    server, directory = multiprocess_server
    assert not (directory / "counter_99999.db").exists(), "the directory is emptied at start"
    requests = 300
    served_by = set()
    for _ in range(requests):
        # A new connection per request, so the kernel spreads them over both workers.
        response = httpx.get(f"{server.url}/health/live", headers={"connection": "close"})
        assert response.status_code == 200
    for path in Path(directory).glob("counter_*.db"):
        served_by.add(int(path.stem.split("_")[1]))
    assert len(served_by & worker_pids(server)) == 2, "both workers served requests"

    # Whichever worker answers the scrape, the sum is over both.
    for _ in range(6):
        samples = scrape(server.url)
        assert value(samples, "http_requests_total", handler="/health/live") == requests
        assert value(samples, "bank_worker_processes") == 2
        assert value(samples, "bank_db_pool_size") == 20

    # Process metrics: the supervisor and both workers (nothing else), summed.
    supervisor = psutil.Process(server.process.pid)
    ours = [supervisor, *(psutil.Process(pid) for pid in worker_pids(server))]
    rss = sum(p.memory_info().rss for p in ours)
    assert 0.8 * rss < value(samples, "process_resident_memory_bytes") < 1.2 * rss
    assert value(samples, "process_start_time_seconds") == pytest.approx(
        supervisor.create_time(), abs=0.1)
    assert value(samples, "process_open_fds") >= sum(p.num_fds() for p in ours) - 3


@pytest.mark.slow
def test_a_dead_workers_live_gauges_are_dropped(multiprocess_server):
    server, _ = multiprocess_server
    deadline = time.monotonic() + 20
    while value(scrape(server.url), "bank_db_pool_size") != 20:
        assert time.monotonic() < deadline, "both workers up"
        time.sleep(0.2)
    victim = min(worker_pids(server))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # uvicorn replaces the worker; its pool gauge must not be counted twice
        samples = scrape(server.url)
        pids = worker_pids(server)
        if victim not in pids and len(pids) == 2 and value(samples, "bank_db_pool_size") == 20:
            break
        assert value(samples, "bank_db_pool_size") <= 20, "a dead worker's gauge is counted"
        assert time.monotonic() < deadline, f"worker not replaced: {pids}"
        time.sleep(0.2)
