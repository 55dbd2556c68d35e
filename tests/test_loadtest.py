"""The load test against a real API: it exercises every endpoint, keeps the books right,
exports Locust's own numbers to Prometheus under the names docs/metrics.md promises, sends
each request with its own X-Request-ID and keeps the ids of the slowest and failed ones; and
it runs a classroom scenario, picked in Locust's web UI or given to the runner.

The API runs here in a child process on an embedded PostgreSQL, the scenario service
(`python -m bank_scenarios serve`) in another against the same database; Locust runs in child
processes (bank_loadtest.runner never imports Locust, whose gevent patching would leak into
this process). Only the runner's option plumbing runs without them (not marked slow).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from csv import DictReader
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bank_loadtest.runner import (
    LOCUSTFILE,
    ScenarioPlan,
    failed_examples,
    locust_env,
    main,
    master_command,
    run_load,
    scenario_plan,
)
from bankops.processes import Service, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
METRICS_MD = REPO_ROOT / "docs" / "metrics.md"
BANK_API = Path(sys.executable).with_name("bank-api")
EVERY_REQUEST = {
    ("POST", "/accounts"),
    ("GET", "/accounts/{account_id}"),
    ("GET", "/accounts/{account_id}/transactions"),
    ("POST", "/accounts/{account_id}/transactions"),
    ("POST", "/transfers"),
    ("GET", "/transfers/{transfer_id}"),
    ("GET", "/transactions/{transaction_id}"),
}
FAST_CUSTOMERS = "0.02-0.2"  # short think time, so a short run reaches every endpoint
ADMIN_TOKEN = "loadtest-admin-token-0123456789"  # the fault switch's, for this test's API
FAULTY_ROUTE = "/accounts/{account_id}"  # the balance check, the most frequent request
FAULTS = {"error_rate": 0.3, "latency_ms": 0, "routes": [FAULTY_ROUTE]}
FAULT_REASON = "CatchResponseError('unexpected status 500 (fault_injected)')"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def wait_for_postgres_to_stop(data_dir: Path, timeout: float = 20) -> None:
    """The API's embedded PostgreSQL is a daemon of its own, which stopping the API does not
    take down; the Service's stop sends it SIGTERM too (the API started it, so it carries the
    Service's mark). Wait until it is gone."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except FileNotFoundError:  # never started, or already stopped cleanly
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"the API's PostgreSQL (pid {pid}) still runs {timeout:.0f}s after "
                         "the API stopped")


@dataclass
class Api:
    url: str
    log: Path  # one JSON object per line (LOG_FORMAT=json)
    pg_dir: Path  # its embedded PostgreSQL's data folder, where its Unix socket is too

    @property
    def database_url(self) -> str:
        """The bank database, as the API itself reaches it (the owner's login)."""
        lines = (self.pg_dir / "postmaster.pid").read_text().splitlines()
        port, socket_dir = lines[3], lines[4]
        return f"postgresql+psycopg2://postgres@/bank?host={quote(socket_dir)}&port={port}"

    def request_lines(self) -> dict[str, dict]:
        """The API's request lines so far (one per request), by request id."""
        lines = {}
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("logger") == "bank_api.request" and "request_id" in record:
                lines[record["request_id"]] = record
        return lines

    def set_faults(self, faults: dict | None) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        if faults is None:
            httpx.delete(f"{self.url}/admin/faults", headers=headers, timeout=10)
        else:
            httpx.put(f"{self.url}/admin/faults", json=faults, headers=headers,
                      timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def api_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """`bank-api` on its own embedded PostgreSQL, as a user would start it, with JSON logs and
    its fault switch usable."""
    workdir = tmp_path_factory.mktemp("loadtest-api")
    port = free_port()
    pg_dir = workdir / "postgres"
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": None, "EMBEDDED_PG_DIR": str(pg_dir), "HOST": "127.0.0.1",
           "PORT": str(port), "LOG_FORMAT": "json", "ADMIN_TOKEN": ADMIN_TOKEN}
    with Service("bank-api", [BANK_API], log_path=workdir / "bank-api.log", env=env,
                 cwd=workdir, ready_url=f"{url}/health/ready", timeout=90):
        yield Api(url, workdir / "bank-api.log", pg_dir)
    wait_for_postgres_to_stop(pg_dir)


@pytest.fixture(scope="module")
def api(api_service: Api) -> str:
    return api_service.url


@dataclass
class Seen:
    """One request that went through the RecordingProxy."""

    method: str
    path: str
    user_agent: str
    request_id: str | None  # the X-Request-ID sent
    status: int
    echoed: str | None  # the X-Request-ID the API answered with


@dataclass
class RecordingProxy:
    """Between Locust and the API: forwards each request unchanged and records the
    X-Request-ID it carried and the one the API answered with."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        client = httpx.Client(base_url=self.upstream, timeout=30,
                              limits=httpx.Limits(max_connections=200))
        proxy = self
        hop_by_hop = {"connection", "keep-alive", "transfer-encoding", "content-length",
                      "content-encoding", "accept-encoding", "host"}

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Locust's client expects

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop_by_hop}
                answer = client.request(self.command, self.path, content=body, headers=headers)
                proxy.seen.append(Seen(self.command, self.path,
                                       self.headers.get("User-Agent", ""),
                                       self.headers.get("X-Request-ID"), answer.status_code,
                                       answer.headers.get("X-Request-ID")))
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in hop_by_hop:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = forward

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.server.daemon_threads = True
        self.client = client
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

    def from_locust(self) -> list[Seen]:
        """What Locust sent (not the runner's readiness and books checks, made with httpx)."""
        return [s for s in self.seen if not s.user_agent.startswith("python-httpx")]


def stats_total(web: str) -> int:
    report = httpx.get(f"{web}/stats/requests", timeout=5).json()
    return next(s["num_requests"] for s in report["stats"] if s["name"] == "Aggregated")


def scrape(web: str) -> tuple[dict[str, list], dict[str, str]]:
    """The master's /export/prometheus, parsed: samples and type by sample name."""
    text = httpx.get(f"{web}/export/prometheus", timeout=5).text
    samples: dict[str, list] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
            types[sample.name] = family.type
    return samples, types


@pytest.fixture(scope="module")
def distributed_run(api: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A master and two workers; the master's export is read while the load runs."""
    run_dir = tmp_path_factory.mktemp("distributed")
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["run_dir"] = run_load(
                api, shape="steady", users=6, duration="18s", spawn_rate=6, workers=2,
                think_time=FAST_CUSTOMERS, run_dir=run_dir, web_port=port, linger=1)
        except Exception as exc:  # reported by the test, not lost in the thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        # Running, with a few seconds of history: response-time percentiles need some.
        deadline = time.monotonic() + 60
        while True:
            assert thread.is_alive(), f"the run ended before it was observed: {outcome}"
            assert time.monotonic() < deadline, "the distributed run never got going"
            try:
                samples, _ = scrape(web)
                users = samples.get("locust_users")
                if users and users[0].value > 0 and samples.get("locust_response_time_seconds"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        # The counters only grow, so the export read between two /stats/requests readings lies
        # between them. /stats/requests is cached for 2 s by Locust: wait that out before `after`.
        before = stats_total(web)
        samples, types = scrape(web)
        time.sleep(2.5)
        after = stats_total(web)
        # The request ids the master gathered from its workers so far, and its web UI's tab.
        live_ids = httpx.get(f"{web}/request-ids", timeout=5).json()
        ui_stats = httpx.get(f"{web}/stats/requests", timeout=5).json()
    finally:
        thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    return {"samples": samples, "types": types, "before": before, "after": after,
            "run_dir": outcome["run_dir"], "live_ids": live_ids, "ui_stats": ui_stats}


@pytest.mark.slow
def test_smoke_run_exercises_every_endpoint_and_keeps_the_books(
        api: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "smoke"
    result = subprocess.run(
        [sys.executable, "-m", "bank_loadtest", "--host", api,
         "--shape", "smoke", "--users", "5", "--duration", "15s", "--think-time", FAST_CUSTOMERS,
         "--run-dir", str(run_dir), "--web-port", str(free_port()), "--linger", "1"],
        capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "PASSED" in result.stdout
    assert re.search(r"\[\s*\d+s\] running .* req/s .*failures", result.stdout), output

    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
                 "report.html", "run.json", "invariants.json"):
        assert (run_dir / name).is_file(), name
    books = json.loads((run_dir / "invariants.json").read_text())
    assert books["verdict"] == "pass", books
    assert books["accounts"] >= 5 and books["total_balance"] == books["external_net"]

    with (run_dir / "locust_stats.csv").open() as f:
        rows = {(r["Type"], r["Name"]): r for r in DictReader(f)}
    for request in EVERY_REQUEST:
        assert request in rows, f"{request} never sent: {sorted(rows)}"
        assert int(rows[request]["Request Count"]) > 0
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0
    with (run_dir / "locust_failures.csv").open() as f:
        assert list(DictReader(f)) == []
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["verdict"] == {"passed": True, "problems": []}
    assert summary["options"]["shape"] == "smoke"
    assert summary["versions"]["locust"]


@pytest.mark.slow
def test_distributed_export_matches_the_masters_stats(distributed_run: dict) -> None:
    samples = distributed_run["samples"]
    assert [s.value for s in samples["locust_workers"]] == [2]
    assert samples["locust_users"][0].value > 0
    exported = sum(s.value for s in samples["locust_requests_total"])
    assert distributed_run["before"] <= exported <= distributed_run["after"], distributed_run
    assert all(s.labels["name"] != "Aggregated" for s in samples["locust_requests_total"])
    # Both workers' requests reached the master, and the books survived them.
    summary = json.loads((distributed_run["run_dir"] / "run.json").read_text())
    assert summary["verdict"]["passed"], summary["verdict"]
    assert summary["options"]["workers"] == 2


def documented_locust_metrics() -> dict[str, tuple[str, set[str], set[str]]]:
    """docs/metrics.md's Locust table: name -> (type, label names, documented quantiles)."""
    section = METRICS_MD.read_text().split("## Locust", 1)[1].split("\n## ", 1)[0]
    metrics = {}
    for row in re.findall(r"^\|\s*`(locust_\w+)`\s*\|([^|]*)\|([^|]*)\|", section, re.M):
        name, kind, labels = row
        quantiles = set(re.findall(r"`([\d.]+)`", labels))
        label_names = set(re.findall(r"`([a-z_]+)`", re.sub(r"\(.*?\)", "", labels)))
        metrics[name] = (kind.strip(), label_names, quantiles)
    return metrics


@pytest.mark.slow
def test_exported_names_and_labels_match_the_metrics_contract(distributed_run: dict) -> None:
    documented = documented_locust_metrics()
    assert set(documented) == {"locust_users", "locust_workers", "locust_requests_total",
                               "locust_failures_total", "locust_response_time_seconds"}
    samples = distributed_run["samples"]
    assert set(samples) == set(documented)
    for name, (kind, labels, quantiles) in documented.items():
        assert distributed_run["types"][name] == kind, name
        for sample in samples[name]:
            assert set(sample.labels) == labels, (name, sample.labels)
            if quantiles:
                assert sample.labels["quantile"] in quantiles


# ------------------------------------------------------------------------ request ids


@pytest.mark.slow
def test_master_web_ui_shows_request_ids_while_running(distributed_run: dict) -> None:
    """The workers' kept ids reach the master during the run: /request-ids and the
    "Request IDs" tab of its web UI (extended_stats of /stats/requests)."""
    live = distributed_run["live_ids"]
    assert live["header"] == "X-Request-ID" and live["names"], live
    for entry in live["names"]:
        for sample in entry["slowest"]:
            assert REQUEST_ID.fullmatch(sample["request_id"]), sample
    [tab] = [t for t in distributed_run["ui_stats"]["extended_stats"] if t["key"] == "request-ids"]
    assert tab["data"] and all(REQUEST_ID.fullmatch(row["request_id"]) for row in tab["data"])
    assert {"name", "kind", "status", "response_time_ms", "at"} <= set(tab["data"][0])


@pytest.mark.slow
def test_prometheus_export_has_no_request_id(distributed_run: dict) -> None:
    """Ids never become label values: the export's series do not grow with requests."""
    for samples in distributed_run["samples"].values():
        for sample in samples:
            for value in sample.labels.values():
                assert not REQUEST_ID.search(value), sample


@pytest.fixture(scope="module")
def faulty_run(api_service: Api, distributed_run: dict,
               tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A master and two workers through a RecordingProxy, with the API's fault switch on for
    the balance check (after distributed_run, so its verdict stays clean)."""
    run_dir = tmp_path_factory.mktemp("faulty")
    proxy = RecordingProxy(api_service.url)
    api_service.set_faults(FAULTS)
    try:
        run_load(proxy.url, shape="steady", users=6, duration="15s", spawn_rate=6, workers=2,
                 think_time=FAST_CUSTOMERS, run_dir=run_dir, web_port=free_port(), linger=1,
                 max_failure_ratio=1, log=lambda line: None)
    finally:
        api_service.set_faults(None)
        proxy.close()
    with (run_dir / "locust_stats.csv").open() as f:
        stats = {(r["Type"], r["Name"]): r for r in DictReader(f)}
    with (run_dir / "locust_failures.csv").open() as f:
        failures = list(DictReader(f))
    kept = json.loads((run_dir / "locust_request_ids.json").read_text())
    return {"run_dir": run_dir, "sent": proxy.from_locust(), "stats": stats,
            "failures": failures, "kept": {(e["method"], e["name"]): e for e in kept["names"]},
            "kept_file": kept, "api_lines": api_service.request_lines()}


@pytest.mark.slow
def test_every_request_carries_its_own_request_id(faulty_run: dict) -> None:
    sent = faulty_run["sent"]
    requests = int(faulty_run["stats"][("", "Aggregated")]["Request Count"])
    # Requests cut short when the users stop reach the proxy but not Locust's counts.
    assert len(sent) >= requests > 100
    ids = [s.request_id for s in sent]
    assert all(i is not None and REQUEST_ID.fullmatch(i) for i in ids), ids[:5]
    assert len(set(ids)) == len(ids), "a request id was sent twice"
    # The API answered each with the id it was given, and logged it.
    assert all(s.echoed == s.request_id for s in sent)
    api_lines = faulty_run["api_lines"]
    assert all(s.request_id in api_lines for s in sent)


@pytest.mark.slow
def test_failures_stay_grouped_and_keep_their_request_ids(faulty_run: dict) -> None:
    # Locust's failure table: one row per name and reason, however many requests failed.
    rows = [r for r in faulty_run["failures"] if r["Name"] == FAULTY_ROUTE]
    assert [r["Error"] for r in rows] == [FAULT_REASON], faulty_run["failures"]
    occurrences = int(rows[0]["Occurrences"])
    assert occurrences > 5
    assert not any(REQUEST_ID.search(r["Error"]) for r in faulty_run["failures"])

    # The ids are in the run folder, under the same reason, counted the same.
    [failure] = faulty_run["kept"][("GET", FAULTY_ROUTE)]["failures"]
    assert failure["reason"] == FAULT_REASON
    assert failure["count"] == occurrences
    assert 1 <= len(failure["requests"]) <= faulty_run["kept_file"]["failed_per_reason"]
    sent = {s.request_id: s for s in faulty_run["sent"]}
    api_lines = faulty_run["api_lines"]
    for request in failure["requests"]:
        assert request["status"] == 500 and request["echoed"], request
        assert request["failure"] == FAULT_REASON
        # The API did answer this very request with a 500, and logged it under that id.
        assert sent[request["request_id"]].status == 500
        line = api_lines[request["request_id"]]
        assert (line["status"], line["route"]) == (500, FAULTY_ROUTE), line

    # The runner points at a few of them.
    examples = failed_examples(faulty_run["run_dir"])
    assert examples and any(r["request_id"] in examples[0] for r in failure["requests"])
    summary = json.loads((faulty_run["run_dir"] / "run.json").read_text())
    assert summary["request_ids"] == "locust_request_ids.json"


@pytest.mark.slow
def test_run_folder_keeps_the_slowest_requests_per_name(faulty_run: dict) -> None:
    kept, stats, api_lines = faulty_run["kept"], faulty_run["stats"], faulty_run["api_lines"]
    sent = {s.request_id: s for s in faulty_run["sent"]}
    names = {key for key in stats if key[1] != "Aggregated"}
    assert names <= set(kept), sorted(names - set(kept))
    limit = faulty_run["kept_file"]["slowest_per_name"]
    for key in names:
        slowest = kept[key]["slowest"]
        requests = int(stats[key]["Request Count"])
        assert len(slowest) == min(limit, requests), key
        times = [s["response_time_ms"] for s in slowest]
        assert times == sorted(times, reverse=True), key
        # The slowest kept is the slowest Locust saw (its max, in whole milliseconds).
        assert abs(times[0] - float(stats[key]["Max Response Time"])) <= 1, key
        for sample in slowest:
            assert sample["echoed"] and sent[sample["request_id"]].status == sample["status"]
            line = api_lines[sample["request_id"]]
            assert (line["status"], line["route"], line["method"]) == (
                sample["status"], key[1], key[0]), (key, sample, line)


@pytest.mark.slow
def test_kept_request_ids_stay_bounded() -> None:
    """Many names, reasons and requests: what is kept stays within its limits, and merging
    each worker's reports keeps exactly the slowest of the whole. (In a subprocess: importing
    Locust patches the standard library for gevent.)"""
    script = """
import json, random
from bank_loadtest import request_ids as r

def sample(i, failed):
    return {"request_id": f"{i:032x}", "status": 500 if failed else 200,
            "response_time_ms": random.random() * 1000, "at": "2026-01-01T00:00:00.000Z",
            "echoed": True, "failure": f"reason {i % 50}" if failed else None}

whole, master, worker = r.RequestSamples(), r.RequestSamples(), r.RequestSamples()
for i in range(60_000):
    s = sample(i, i % 3 == 0)
    name = f"/route/{(i // 2) % 300}" if i % 2 else "/hot"
    whole.record("GET", name, s)
    worker.record("GET", name, s)
    if i % 997 == 0:
        master.merge(json.loads(json.dumps(worker.drain())))
master.merge(worker.drain())
a, b = whole.to_dict(), master.to_dict()
assert len(a["names"]) == r.MAX_NAMES and a["names_dropped"] > 0
for entry in a["names"]:
    assert len(entry["slowest"]) <= r.SLOWEST_PER_NAME
    assert len(entry["failures"]) <= r.MAX_REASONS_PER_NAME + 1
    assert all(len(f["requests"]) <= r.FAILED_PER_REASON for f in entry["failures"])
hot = lambda d: next(e for e in d["names"] if e["name"] == "/hot")
assert [s["request_id"] for s in hot(a)["slowest"]] == [s["request_id"] for s in hot(b)["slowest"]]
assert sum(f["count"] for f in hot(a)["failures"]) == sum(f["count"] for f in hot(b)["failures"])
assert any(f["reason"] == r.OTHER_REASONS for f in hot(a)["failures"])
assert len(json.dumps(a)) < 3_000_000
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=REPO_ROOT)
    assert result.stdout.strip().endswith("ok"), result.stdout + result.stderr


# ------------------------------------------------------------------------ scenarios

SCENARIO = "lock-held"  # one of the catalogue's (scenarios/catalogue/)
SPIKE = "traffic-spike"  # one whose load changes: 10 users, 150, then 10 again
FAST = 10.0  # the fastest the scenario service allows: 6 minutes in 36 s
PLAN = ScenarioPlan(name="lock-held", title="A migration holds a lock on the ledger", speed=3.0,
                    service_url="http://127.0.0.1:8090", users=10, spawn_rate=5.0,
                    duration=120.0)


def test_scenario_run_command_line_and_environment(tmp_path: Path) -> None:
    """With a scenario, the master starts with its first users and ramp, is told the scenario
    and its speed, runs no load shape, and has the scenario service's URL."""
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    command = master_command(locust, "http://api", tmp_path, 6, "127.0.0.1", 8089, 0, None, PLAN)
    assert command[:len(locust)] == locust
    options = command[len(locust):]
    value = dict(zip(options, options[1:], strict=False))
    assert (value["--users"], value["--spawn-rate"]) == ("10", "5")
    assert (value["--scenario"], value["--scenario-speed"]) == ("lock-held", "3")
    assert "--autostart" in options and value["--autoquit"] == "6"
    env = locust_env(None, None, None, PLAN.duration, None, "0.1-0.2", PLAN)
    assert env == {"LOAD_SHAPE": "", "PYTHONUNBUFFERED": "1", "LOAD_THINK_TIME": "0.1-0.2",
                   "SCENARIO_SERVICE_URL": "http://127.0.0.1:8090"}

    # Without one, nothing of it.
    plain = master_command(locust, "http://api", tmp_path, 6, "127.0.0.1", 8089, 0, None)
    assert not {"--scenario", "--scenario-speed", "--users"} & set(plain)
    assert locust_env("steady", 20, "60s", 60.0, None, None) == {
        "LOAD_SHAPE": "steady", "PYTHONUNBUFFERED": "1", "LOAD_USERS": "20",
        "LOAD_DURATION": "60"}


def test_runner_refuses_a_scenario_with_a_load_of_its_own(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--scenario", SCENARIO, "--users", "5"])
    assert exited.value.code == 2
    assert "--scenario sets the load" in capsys.readouterr().err
    with pytest.raises(ValueError, match="give no users, duration or spawn rate"):
        run_load("http://127.0.0.1:1", scenario=SCENARIO, duration="60s")


def test_runner_says_when_the_scenario_service_does_not_answer() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match=f"scenario service at {nobody} does not answer"):
        scenario_plan(SCENARIO, 1.0, nobody)
    with pytest.raises(ValueError, match="above 0"):
        scenario_plan(SCENARIO, 0, nobody)


def wait_for(check, what: str, timeout: float = 30):
    """check()'s first true answer, asked again until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = check()
        except (httpx.HTTPError, ValueError, KeyError, TypeError):  # not answering yet
            answer = None
        if answer:
            return answer
        assert time.monotonic() < deadline, f"{what} (after {timeout:.0f}s)"
        time.sleep(0.3)


def current_run(service: str) -> dict | None:
    answer = httpx.get(f"{service}/runs/current", timeout=10)
    return answer.json() if answer.status_code == 200 else None


def web_ui_options(web: str) -> dict:
    """The custom arguments Locust's web UI offers under "Custom parameters": its index page
    hands them to the UI's script in window.templateArgs."""
    page = httpx.get(f"{web}/", timeout=10).text
    match = re.search(r"window\.templateArgs = (\{.*\})\s*$", page, re.M)
    assert match, page[:500]
    return json.loads(match.group(1))["extra_options"]


@contextmanager
def locust_web_ui(workdir: Path, env: dict, *options: str) -> Iterator[str]:
    """`locust -f loadtest/locustfile.py` with its web UI, as a user starts it; its URL."""
    web = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--web-host", "127.0.0.1",
               "--web-port", web.rsplit(":", 1)[1], *options]
    with Service("locust", command, log_path=workdir / "locust.log", env=env, cwd=workdir,
                 ready_url=f"{web}/", timeout=30):
        yield web


@pytest.mark.slow
@pytest.mark.parametrize("service", ["unreachable", "unset"])
def test_web_ui_offers_no_scenario_without_the_service(service: str, tmp_path: Path) -> None:
    """The option is there, with nothing to choose, and its help says why."""
    nobody = f"http://127.0.0.1:{free_port()}"
    env = {"SCENARIO_SERVICE_URL": nobody if service == "unreachable" else None}
    with locust_web_ui(tmp_path, env) as web:
        options = web_ui_options(web)
    scenario = options["scenario"]
    assert (scenario["choices"], scenario["default_value"]) == ([""], "")
    if service == "unreachable":
        assert f"the scenario service at {nobody}" in scenario["help_text"]
        assert "did not answer" in scenario["help_text"]
    else:
        assert "SCENARIO_SERVICE_URL is not set" in scenario["help_text"]
    speed = options["scenario_speed"]
    assert (speed["choices"], speed["default_value"]) == (None, 1.0)


@pytest.mark.slow
def test_locust_refuses_a_scenario_the_service_could_not_list(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
         "-H", "http://127.0.0.1:1", "--scenario", SCENARIO],
        env={**os.environ, "SCENARIO_SERVICE_URL": nobody}, cwd=tmp_path,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"argument --scenario: cannot run '{SCENARIO}': the scenario service at {nobody}" \
        in result.stderr


@pytest.fixture(scope="module")
def scenario_service(api_service: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scenario service on the API's database and with its admin token, as the stack
    runs it."""
    workdir = tmp_path_factory.mktemp("scenarios")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": api_service.database_url,
           "API_URL": api_service.url, "ADMIN_TOKEN": ADMIN_TOKEN}
    with Service("scenario service", [sys.executable, "-m", "bank_scenarios", "serve"],
                 log_path=workdir / "scenarios.log", env=env, cwd=workdir,
                 ready_url=f"{url}/health", timeout=60):
        yield url


@pytest.mark.slow
def test_web_ui_offers_the_services_scenarios(scenario_service: str, tmp_path: Path) -> None:
    listed = [s["name"] for s in
              httpx.get(f"{scenario_service}/scenarios", timeout=10).json()["scenarios"]]
    assert SCENARIO in listed
    with locust_web_ui(tmp_path, {"SCENARIO_SERVICE_URL": scenario_service}) as web:
        scenario = web_ui_options(web)["scenario"]
    assert scenario["choices"] == ["", *listed]
    assert scenario["default_value"] == ""
    assert scenario_service in scenario["help_text"]


@pytest.mark.slow
def test_scenario_picked_in_the_web_ui_runs_and_stops_with_the_test(
        api: str, scenario_service: str, tmp_path: Path) -> None:
    """In the web UI of a master with a worker: starting the test starts the scenario, whose
    first load step replaces the users typed in the form; Stop stops the scenario, its faults
    undone."""
    entry = httpx.get(f"{scenario_service}/scenarios/{SCENARIO}", timeout=10).json()
    master_port = free_port()
    env = {"SCENARIO_SERVICE_URL": scenario_service, "LOAD_SHAPE": "",
           "LOAD_THINK_TIME": FAST_CUSTOMERS}
    worker = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
              "--master-host", "127.0.0.1", "--master-port", str(master_port)]
    with locust_web_ui(tmp_path, env, "--master", "--master-bind-host", "127.0.0.1",
                       "--master-bind-port", str(master_port), "-H", api) as web, \
            Service("locust worker", worker, log_path=tmp_path / "locust-worker.log", env=env,
                    cwd=tmp_path, timeout=30):
        def stats() -> dict:
            return httpx.get(f"{web}/stats/requests", timeout=10).json()

        wait_for(lambda: stats()["worker_count"] == 1, "the worker never connected")
        # Typed in the form: more users than the scenario's, slowly.
        form = {"user_count": entry["users"] + 7, "spawn_rate": 1, "host": api,
                "scenario": SCENARIO, "scenario_speed": FAST}
        assert httpx.post(f"{web}/swarm", data=form, timeout=10).json()["success"]
        run = wait_for(lambda: current_run(scenario_service), "no scenario run started")
        assert (run["scenario"], run["speed"], run["state"]) == (SCENARIO, FAST, "running")
        wait_for(lambda: stats()["user_count"] == entry["users"],
                 f"Locust never ran the scenario's {entry['users']} users", timeout=15)
        time.sleep(4)  # the form's ramp would go on to more
        assert stats()["user_count"] == entry["users"]

        assert httpx.post(f"{web}/stop", timeout=60).json()["success"]
        stopped = wait_for(lambda: (r := current_run(scenario_service))["state"] != "running"
                           and r, "the scenario still runs after Stop")
    assert stopped["id"] == run["id"] and stopped["state"] == "stopped"
    assert {fault["state"] for fault in stopped["faults"]} == {"undone"}, stopped["faults"]
    assert f"test stopped before scenario {SCENARIO} ended" in (
        tmp_path / "locust.log").read_text()


@pytest.mark.slow
def test_runner_runs_a_scenario_and_ends_with_it(
        api: str, scenario_service: str, tmp_path: Path) -> None:
    """Locust follows the scenario's load steps and ends with it; the run records it."""
    entry = httpx.get(f"{scenario_service}/scenarios/{SPIKE}", timeout=10).json()
    run_dir = run_load(api, scenario=SPIKE, scenario_speed=FAST,
                       scenario_service_url=scenario_service, run_dir=tmp_path / "run",
                       web_port=free_port(), linger=1, max_failure_ratio=1,
                       log=lambda line: None)
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["verdict"] == {"passed": True, "problems": []}
    options = summary["options"]
    assert (options["scenario"], options["scenario_speed"], options["shape"]) == (
        SPIKE, FAST, None)
    assert options["duration_seconds"] == entry["duration"] / FAST

    # The service ran it to its end: Locust ended with it, without stopping it.
    run = current_run(scenario_service)
    assert (run["scenario"], run["speed"], run["state"]) == (SPIKE, FAST, "finished")
    started = datetime.fromisoformat(summary["started_at"]).timestamp()
    ended = datetime.fromisoformat(summary["ended_at"]).timestamp()
    assert started - 1 <= run["started_at"] < run["ends_at"] <= ended + 1
    log = (run_dir / "locust.log").read_text()
    steps = run["load"]["steps"]
    assert len(steps) == 3, steps
    for number, step in enumerate(steps, 1):
        assert f"step {number}/3, {step['users']} users" in log
    assert f"scenario {SPIKE} ended: stopping the test" in log

    # Locust's users, second by second: up to the spike, and back.
    with (run_dir / "locust_stats_history.csv").open() as f:
        users = [int(row["User Count"]) for row in DictReader(f)
                 if row["Name"] == "Aggregated"]
    peak = users.index(steps[1]["users"])
    assert steps[2]["users"] in users[peak:], users


@pytest.mark.slow
def test_runner_fails_when_the_service_refuses_the_scenario(
        api: str, scenario_service: str, tmp_path: Path) -> None:
    """Another scenario runs already: Locust stops rather than load without its own, and the
    run fails saying why, leaving the other one alone."""
    answer = httpx.post(f"{scenario_service}/runs", json={"scenario": SCENARIO, "speed": FAST},
                        timeout=30)
    assert answer.status_code == 201, answer.text
    try:
        run_dir = run_load(api, scenario=SCENARIO, scenario_speed=FAST,
                           scenario_service_url=scenario_service, run_dir=tmp_path / "run",
                           web_port=free_port(), linger=1, log=lambda line: None)
        other = current_run(scenario_service)
    finally:
        httpx.delete(f"{scenario_service}/runs/current", timeout=60)
    assert (other["id"], other["state"]) == (answer.json()["id"], "running")
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["locust_exit_code"] == 1
    refusal, *_ = summary["verdict"]["problems"]
    assert refusal.startswith(f"scenario refused: {SCENARIO}: "), refusal
    assert "409 scenario_running" in refusal


@pytest.mark.slow
def test_locust_refuses_a_scenario_with_a_load_shape(
        api: str, scenario_service: str, tmp_path: Path) -> None:
    before = current_run(scenario_service)
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-H", api,
         "--scenario", SCENARIO],
        env={**os.environ, "SCENARIO_SERVICE_URL": scenario_service, "LOAD_SHAPE": "smoke"},
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"scenario refused: {SCENARIO}: LOAD_SHAPE=smoke is set" in result.stderr
    assert current_run(scenario_service) == before  # no run started
