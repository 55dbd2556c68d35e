"""The live check: the stack running natively with the repo's own config files.

PostgreSQL (embedded), the API, postgres-exporter, Alertmanager and a real Prometheus started
with prometheus.yml (only addresses rewritten to 127.0.0.1) and alerts.yml
(bankops.stack), every secret generated and read from files as in compose:

- the API, the exporter and the read-only login work with the generated secrets, and the
  database refuses a wrong password (no trust login stands in for them);
- a cold start with no load, left alone for two minutes, fires no alert;
then the API serves a short Locust run (bank_loadtest), and:
- every scrape target is up and is scraped every 5 s;
- every PromQL query of every dashboard returns data, and so does every SQL panel run through
  the read-only login the Grafana datasource uses;
- the number of requests Prometheus counted agrees with the number Locust sent;
- under a second Locust run, the fault switch at 20 % errors on the money routes pages
  (ErrorBudgetFastBurn, routed to the `page` receiver) and the page resolves once it is off;
  so does 300 ms more on the ledger route (slo="latency"); the times are printed;
- once the API is stopped, BankApiDown reaches Alertmanager.

About eight minutes: two quiet minutes, a minute of load (enough for the dashboards' 1m rate
windows), about three minutes of incidents, then the 30 s `for:` of BankApiDown.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

import dashboard_queries as dq  # from tests/, by pytest's rootdir-based import mode
from bank_loadtest.runner import run_load
from bankops.stack.native import OWNER, READER, NativeStack, Ports

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

LOAD_USERS = 10
LOAD_SECONDS = 60
COLD_START_SECONDS = 120  # left alone after the start, with no load
SCRAPE_INTERVAL = 5.0
JOBS = {"prometheus", "bank-api", "postgres-exporter", "locust", "scenarios"}
# Requests the API answered, by route; its own /metrics (Prometheus scraping) is not traffic.
API_REQUESTS = 'sum by (method, handler) (http_requests_total{job="bank-api", handler!="/metrics"})'
PROM_QUERIES = dq.prometheus_queries(REPO)
# The firing-alerts table is empty while nothing fires: it is checked once BankApiDown fires,
# every other query during the load run.
FIRING_ALERTS = 'ALERTS{alertstate="firing"}'
LOAD_QUERIES = [q for q in PROM_QUERIES if q[2].strip() != FIRING_ALERTS]
# The latency panels' queries Grafana also sends to /api/v1/query_exemplars.
EXEMPLAR_QUERIES = dq.exemplar_queries(REPO)
SQL_QUERIES = dq.sql_queries(REPO)


def query_id(query: tuple[str, str, str]) -> str:
    return f"{query[0]}:{query[1]}"


class Prometheus:
    """The few calls of Prometheus's HTTP API the checks need."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = self.http.post("/api/v1/query", data={"query": expr})
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def requests_by_route(self) -> dict[str, float]:
        """"METHOD handler" -> requests the API has answered, as Locust names them."""
        return {f"{s['metric']['method']} {s['metric']['handler']}": float(s["value"][1])
                for s in self.query(API_REQUESTS)}

    def exemplar_trace_ids(self, expr: str, seconds: float = 600) -> set[str]:
        """The trace ids of the exemplars Prometheus stored for the query's series."""
        now = time.time()
        response = self.http.post("/api/v1/query_exemplars",
                                  data={"query": expr, "start": now - seconds, "end": now})
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return {exemplar["labels"]["trace_id"]
                for series in body["data"] for exemplar in series["exemplars"]}

    def series(self, selector: str) -> list[dict[str, str]]:
        return self.http.get("/api/v1/series", params={"match[]": selector}).json()["data"]

    def target_health(self) -> dict[str, str]:
        targets = self.http.get("/api/v1/targets").json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in targets}

    def wait_for_scrape(self, job: str, after: float, timeout: float = 30) -> None:
        """Wait until the job has been scraped after the given time (epoch seconds), so the
        next queries see everything that happened before it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(f'timestamp(up{{job="{job}"}})')
            if result and float(result[0]["value"][1]) > after:
                return
            time.sleep(0.5)
        raise AssertionError(f"no scrape of {job} after {after} within {timeout}s")


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    with NativeStack(tmp_path_factory.mktemp("native-stack"), ports=Ports.free()) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(stack: NativeStack) -> Iterator[Prometheus]:
    client = Prometheus(stack.prometheus_url)
    yield client
    client.http.close()


def login(stack: NativeStack, user: str, password: str):
    """An engine for one of the stack's password logins."""
    url = make_url(stack.login_url(user)).set(password=password)
    return create_engine(url)


@dataclass
class ColdStart:
    alertmanager: list[dict]  # alerts Alertmanager holds after the quiet minutes
    fired: list[dict]  # ALERTS series that were firing at any moment of them
    pending: list[dict]  # and those that were only pending


@pytest.fixture(scope="module")
def cold_start(stack: NativeStack, prometheus: Prometheus) -> ColdStart:
    """The stack just started, no load, nothing done for two minutes: what alerted?"""
    started = time.monotonic()
    time.sleep(COLD_START_SECONDS)
    window = f"[{COLD_START_SECONDS + int(time.monotonic() - started) + 10}s]"
    with httpx.Client(base_url=stack.alertmanager_url, timeout=10) as alertmanager:
        held = alertmanager.get("/api/v2/alerts").json()
    return ColdStart(held, prometheus.query(f'ALERTS{{alertstate="firing"}}{window}'),
                     prometheus.query(f'ALERTS{{alertstate="pending"}}{window}'))


def seed_refusal(api_url: str) -> None:
    """A debit the bank refuses. Customers in a short run rarely overdraw, and the refusals
    panel needs at least one row."""
    with httpx.Client(base_url=api_url, timeout=10) as api:
        account = api.post("/accounts", json={"first_name": "Live", "last_name": "Check",
                                              "address": "1 Loopback Road", "currency": "EUR"})
        assert account.status_code == 201, account.text
        refused = api.post(f"/accounts/{account.json()['id']}/transactions",
                           json={"direction": "debit", "amount": 100})
        assert refused.status_code == 409, refused.text


def load(stack: NativeStack, run_dir: Path) -> None:
    """The load runner's steady run: Locust's master web UI (and /export/prometheus) on the
    port Prometheus scrapes, the money invariants checked in SQL afterwards."""
    with (stack.log_dir / "load.log").open("a") as log:
        run_load(stack.api_url, shape="steady", users=LOAD_USERS, duration=LOAD_SECONDS,
                 run_dir=run_dir, database_url=stack.database_url,
                 web_port=stack.ports.locust, log=lambda line: print(line, file=log, flush=True))


@dataclass
class LoadRun:
    """What was seen during and after the Locust run."""

    targets: dict[str, str] = field(default_factory=dict)  # job -> health, during the run
    results: dict[str, list] = field(default_factory=dict)  # PromQL -> result, during the run
    variable_series: dict[str, list] = field(default_factory=dict)  # selector -> series
    api_before: dict[str, float] = field(default_factory=dict)  # route -> requests answered
    api_after: dict[str, float] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)  # run.json of the load run
    exemplars: dict[str, set[str]] = field(default_factory=dict)  # query -> trace ids


@pytest.fixture(scope="module")
def load_run(stack: NativeStack, prometheus: Prometheus, cold_start: ColdStart) -> LoadRun:
    """After the quiet minutes (cold_start): the load would end them."""
    seen = LoadRun()
    seed_refusal(stack.api_url)
    # The request count before the run, read once Prometheus has seen every earlier request.
    prometheus.wait_for_scrape("bank-api", after=time.time())
    seen.api_before = prometheus.requests_by_route()

    run_dir = stack.work_dir / "load"
    started = time.monotonic()
    locust = threading.Thread(target=load, args=(stack, run_dir), daemon=True)
    locust.start()
    # Near the end of the run, while Locust still serves its metrics: 1m rate windows are
    # then full of load. (Once Locust exits, Prometheus marks its series stale at once.)
    time.sleep(max(0.0, started + LOAD_SECONDS - 10 - time.monotonic()))
    seen.targets = prometheus.target_health()
    seen.results = {expr: prometheus.query(expr) for _, _, expr in LOAD_QUERIES}
    seen.exemplars = {expr: prometheus.exemplar_trace_ids(expr) for _, _, expr in EXEMPLAR_QUERIES}
    seen.variable_series = {
        selector: prometheus.series(selector)
        for _, _, selector in dq.variable_selectors(REPO)
    }
    locust.join(timeout=LOAD_SECONDS + 120)
    assert (run_dir / "run.json").exists(), f"the load run did not finish; see {run_dir}"
    seen.summary = json.loads((run_dir / "run.json").read_text())

    prometheus.wait_for_scrape("bank-api", after=time.time())
    seen.api_after = prometheus.requests_by_route()
    return seen


# ------------------------------------------------------------------------------ checks


def without_addresses(config: dict) -> dict:
    config = copy.deepcopy(config)
    config.pop("rule_files")
    for alertmanager in config["alerting"]["alertmanagers"]:
        alertmanager.pop("static_configs")
    for job in config["scrape_configs"]:
        job.pop("static_configs", None)
        job.pop("dns_sd_configs", None)
    return config


def test_prometheus_runs_the_repo_config_with_only_addresses_changed(stack: NativeStack):
    original = yaml.safe_load((REPO / "prometheus.yml").read_text(encoding="utf-8"))
    native = yaml.safe_load(stack.prometheus_config_path.read_text(encoding="utf-8"))
    assert without_addresses(native) == without_addresses(original)

    ports = stack.ports
    assert native["rule_files"] == [str(REPO / "alerts.yml"), str(REPO / "slo-rules.yml")]
    assert [t for am in native["alerting"]["alertmanagers"]
            for sc in am["static_configs"] for t in sc["targets"]] == [
        f"127.0.0.1:{ports.alertmanager}"]
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in native["scrape_configs"]}
    assert targets == {
        "prometheus": [f"127.0.0.1:{ports.prometheus}"],
        "bank-api": [f"127.0.0.1:{ports.api}"],
        "postgres-exporter": [f"127.0.0.1:{ports.postgres_exporter}"],
        "locust": [f"127.0.0.1:{ports.locust}"],
        "scenarios": [f"127.0.0.1:{ports.scenarios}"],
    }


def test_the_logins_use_the_generated_secrets(stack: NativeStack):
    """The stack's secrets are files in its secrets folder (stack_secrets.py, as compose's
    volume); the API and the exporter started with them, and the passwords are enforced."""
    assert httpx.get(f"{stack.api_url}/health/ready").status_code == 200  # owner login
    exporter = httpx.get(f"{stack.exporter_url}/metrics").text
    assert "\npg_up 1" in exporter, "postgres-exporter could not log in"
    token = stack.secret("ADMIN_TOKEN")
    assert len(token) == 32
    admin = f"{stack.api_url}/admin/faults"
    assert httpx.get(admin, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(admin, headers={"Authorization": "Bearer " + "x" * 20}).status_code == 401

    reader = login(stack, READER, stack.secret("BANK_READER_PASSWORD"))
    try:
        with reader.connect() as connection:
            connection.execute(text("SELECT count(*) FROM accounts"))
    finally:
        reader.dispose()
    for user in (OWNER, READER):
        wrong = login(stack, user, "not-the-password")
        try:
            with pytest.raises(OperationalError, match="password authentication failed"):
                wrong.connect()
        finally:
            wrong.dispose()


def test_a_cold_start_fires_no_alert(cold_start: ColdStart):
    print(f"\npending during the quiet minutes: "
          f"{sorted({s['metric']['alertname'] for s in cold_start.pending}) or 'none'}")
    assert cold_start.fired == [], "alerts fired during a quiet cold start"
    assert cold_start.alertmanager == [], "Alertmanager received alerts"


def test_every_target_is_up_during_the_run(load_run: LoadRun):
    assert load_run.targets == dict.fromkeys(JOBS, "up")


@pytest.mark.parametrize("job", sorted(JOBS))
def test_samples_arrive_every_5s(load_run: LoadRun, prometheus: Prometheus, job: str):
    # `up` gets a sample at every scrape, even a failed one (locust after its run).
    [series] = prometheus.query(f'up{{job="{job}"}}[1m]')
    stamps = [float(t) for t, _ in series["values"]]
    gaps = [round(b - a, 3) for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(gaps) >= 10, gaps
    assert all(abs(gap - SCRAPE_INTERVAL) <= 0.5 for gap in gaps), gaps


@pytest.mark.parametrize("query", LOAD_QUERIES, ids=query_id)
def test_dashboard_query_returns_data(load_run: LoadRun, query: tuple[str, str, str]):
    uid, title, expr = query
    assert load_run.results[expr], f"{uid}: {title!r} returned nothing:\n{expr}"


def test_latency_exemplars_lead_to_traces_the_api_exported_and_logged(
        load_run: LoadRun, stack: NativeStack):
    """Prometheus (exemplar storage on, as in compose) stored the API's exemplars; each is the
    id of a trace whose spans reached the trace receiver and whose log lines carry it. The
    stack's Tempo and Loki look-ups (what `bank trace` reads) answer for one of them."""
    assert EXEMPLAR_QUERIES
    exported = stack.traces.traces()
    lines = (stack.log_dir / "api.log").read_text().splitlines()
    records = {record["trace_id"]: record for record in map(json.loads, filter(str.strip, lines))
               if "trace_id" in record}
    for expr, trace_ids in load_run.exemplars.items():
        assert trace_ids, f"no exemplar for {expr}"
        assert trace_ids <= set(exported), f"exemplars of traces never exported: {expr}"
        assert trace_ids <= set(records), f"exemplars of traces never logged: {expr}"
    trace_id = min(next(iter(load_run.exemplars.values())))
    assert_looked_up(stack, records[trace_id], exported[trace_id])


def assert_looked_up(stack: NativeStack, record: dict, spans: list) -> None:
    """Tempo's trace by id gives the trace's spans, Loki's query_range the request's line."""
    trace_id = record["trace_id"]
    answer = httpx.get(f"{stack.tempo_url}/api/traces/{trace_id}",
                       headers={"Accept": "application/protobuf"}, timeout=10)
    assert answer.status_code == 200, answer.text
    returned = {span.span_id.hex() for batch in TracesData.FromString(answer.content).resource_spans
                for scope in batch.scope_spans for span in scope.spans}
    assert returned == {span.span_id for span in spans}

    at = datetime.fromisoformat(record["timestamp"])
    start = int(at.timestamp()) * 10**9  # the whole second around the line
    answer = httpx.get(f"{stack.loki_url}/loki/api/v1/query_range", timeout=10, params={
        "query": f'{{service="api"}} |= "{record["request_id"]}"',
        "start": start, "end": start + 2 * 10**9, "direction": "forward"})
    assert answer.status_code == 200, answer.text
    [stream] = answer.json()["data"]["result"]
    lines = [json.loads(line) for _, line in stream["values"]]
    assert record in lines, lines


def test_dashboard_variables_have_values(load_run: LoadRun):
    for selector, series in load_run.variable_series.items():
        assert series, f"no series for {selector}"


@pytest.mark.parametrize("query", SQL_QUERIES, ids=query_id)
def test_sql_panel_returns_rows_as_the_read_only_role(
    load_run: LoadRun, stack: NativeStack, query: tuple[str, str, str]
):
    uid, title, sql = query
    start, end = dq.default_time_range(hours=1)
    engine = login(stack, READER, stack.secret("BANK_READER_PASSWORD"))
    try:
        # Through Grafana's own login: a panel reading a table it may not read fails here as
        # it would in Grafana.
        with engine.connect() as connection:
            rows = connection.execute(text(dq.expand_sql_macros(sql, start, end))).all()
    finally:
        engine.dispose()
    assert rows, f"{uid}: {title!r} returned no rows"


def test_load_run_passed(load_run: LoadRun):
    """Few failures, and the books balance after the load (the load runner's verdict)."""
    assert load_run.summary["verdict"]["passed"], load_run.summary["verdict"]["problems"]


def test_prometheus_counts_what_locust_sent(load_run: LoadRun):
    """Locust names each request by its route template, so its count per name can be put
    beside the API's http_requests_total per (method, handler), as Prometheus stored it.
    Only Locust's routes are compared: the runner also asks for /health/ready and
    /openapi.json."""
    totals = load_run.summary["totals"]
    answered = {route: load_run.api_after.get(route, 0) - load_run.api_before.get(route, 0)
                for route in load_run.api_after}
    counted = sum(answered.get(route, 0) for route in totals["requests_by_name"])
    sent = totals["requests"]
    ratio = counted / sent
    print(f"\nrequests: Locust sent {sent} ({totals['failures']} failed), Prometheus counted "
          f"{counted:.0f} on the same routes (ratio {ratio:.4f}) and {sum(answered.values()):.0f}"
          " on all routes")
    for route, count in sorted(totals["requests_by_name"].items()):
        print(f"  {route:45} Locust {count:6}  Prometheus {answered.get(route, 0):6.0f}")
    assert sent > 100, "the run was too short to compare anything"
    assert math.isclose(ratio, 1, abs_tol=0.02), f"Prometheus {counted:.0f} vs Locust {sent}"


# ------------------------------------------------------------------------------ SLO pages

MONEY_ROUTES = ["/accounts/{account_id}/transactions", "/transfers"]
# The fault switch chooses route templates, not methods: the ledger's template is both its
# history (GET, about a third of reads) and credits and debits (POST). So the errors on the
# money routes also reach the history's reads, and the latency reaches both.
LEDGER_ROUTE = "/accounts/{account_id}/transactions"
INCIDENTS = {
    "money-movements": {"error_rate": 0.2, "routes": MONEY_ROUTES},
    "latency": {"latency_ms": 300, "routes": [LEDGER_ROUTE]},
}
PAGE_LIMIT = 120  # seconds: a bound for the test, not the target (docs/slos.md)
WARM_UP = 30  # seconds of load before the first incident: every SLO window has traffic


@dataclass
class Incident:
    paged_after: float | None = None  # seconds from the switch to the page at Alertmanager
    receivers: list[str] = field(default_factory=list)
    resolved_after: float | None = None  # seconds from switching off to the page gone


def held(alertmanager: httpx.Client, alertname: str, **labels: str) -> list[dict]:
    """The active alerts Alertmanager holds with this name and these labels."""
    wanted = {"alertname": alertname, **labels}
    return [a for a in alertmanager.get("/api/v2/alerts", params={"active": "true"}).json()
            if all(a["labels"].get(k) == v for k, v in wanted.items())]


def burn_pages(alertmanager: httpx.Client, slo: str) -> list[dict]:
    return held(alertmanager, "ErrorBudgetFastBurn", slo=slo)


def wait(condition, limit: float) -> float | None:
    """Seconds until condition() holds, polled twice a second; None past the limit."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def cause(stack: NativeStack, alertmanager: httpx.Client, slo: str, faults: dict) -> Incident:
    """Switch the faults on, wait for the page, switch them off, wait until it is gone."""
    incident = Incident()
    stack.set_faults(faults)
    try:
        incident.paged_after = wait(lambda: burn_pages(alertmanager, slo), PAGE_LIMIT)
        pages = burn_pages(alertmanager, slo)
        incident.receivers = sorted(r["name"] for page in pages for r in page["receivers"])
    finally:
        stack.clear_faults()
    incident.resolved_after = wait(lambda: not burn_pages(alertmanager, slo), PAGE_LIMIT)
    return incident


@pytest.fixture(scope="module")
def slo_incidents(stack: NativeStack, load_run: LoadRun) -> dict[str, Incident]:
    """After the first run: a second Locust run, and each incident of INCIDENTS in turn."""
    seen: dict[str, Incident] = {}
    seconds = WARM_UP + len(INCIDENTS) * 2 * PAGE_LIMIT  # cut short once the incidents end
    done = threading.Event()

    def run() -> None:
        with (stack.log_dir / "load-incidents.log").open("a") as log:
            run_load(stack.api_url, shape="steady", users=LOAD_USERS, duration=seconds,
                     run_dir=stack.work_dir / "load-incidents", database_url=stack.database_url,
                     web_port=stack.ports.locust, max_failure_ratio=1,
                     log=lambda line: print(line, file=log, flush=True))
        done.set()

    locust = threading.Thread(target=run, daemon=True)
    locust.start()
    time.sleep(WARM_UP)
    with httpx.Client(base_url=stack.alertmanager_url, timeout=10) as alertmanager:
        for slo, faults in INCIDENTS.items():
            assert not done.is_set(), "the load run ended before the incidents"
            seen[slo] = cause(stack, alertmanager, slo, faults)
    # Stops the users: the master quits (--autoquit) and the runner checks the books.
    httpx.post(f"{stack.locust_url}/stop", timeout=10).raise_for_status()
    locust.join(timeout=PAGE_LIMIT)
    return seen


@pytest.mark.parametrize("slo", sorted(INCIDENTS))
def test_an_incident_pages_and_the_page_resolves(slo_incidents: dict[str, Incident], slo: str):
    incident = slo_incidents[slo]
    print(f"\n{slo}: {INCIDENTS[slo]} -> ErrorBudgetFastBurn at Alertmanager after "
          f"{incident.paged_after and round(incident.paged_after, 1)} s, resolved "
          f"{incident.resolved_after and round(incident.resolved_after, 1)} s after switching "
          f"off; receivers {incident.receivers}")
    assert incident.paged_after is not None, f"no page for {slo} within {PAGE_LIMIT} s"
    assert incident.receivers == ["page"], "a burn-rate page must reach the page receiver"
    assert incident.resolved_after is not None, f"the page stayed {PAGE_LIMIT} s after"


def test_stopped_api_fires_bank_api_down(stack: NativeStack, prometheus: Prometheus,
                                         load_run: LoadRun):
    stack.stop_api()
    # for: 30s after the first failed scrape (5 s), evaluated every 5 s: about 40 s.
    with httpx.Client(base_url=stack.alertmanager_url, timeout=10) as alertmanager:
        elapsed = wait(lambda: held(alertmanager, "BankApiDown"), 120)
        alerts = held(alertmanager, "BankApiDown")
    print(f"\nBankApiDown in Alertmanager {elapsed and round(elapsed)}s after the API stopped")
    assert alerts, "BankApiDown did not reach Alertmanager within 120 s"
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["labels"]["job"] == "bank-api"

    # The dashboards' firing-alerts table now has a row.
    assert FIRING_ALERTS in {expr.strip() for _, _, expr in PROM_QUERIES}
    firing = prometheus.query(FIRING_ALERTS)
    assert "BankApiDown" in {series["metric"]["alertname"] for series in firing}

    stack.start_api()  # and it comes back
    assert httpx.get(f"{stack.api_url}/health/ready").status_code == 200
