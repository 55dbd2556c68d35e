"""The load test against a real API: it exercises every endpoint, keeps the books right,
exports Locust's own numbers to Prometheus under the names docs/metrics.md promises, sends
each request with its own X-Request-ID and keeps the ids of the slowest and failed ones.

The API runs here in a child process on an embedded PostgreSQL; Locust runs in child
processes (bank_loadtest.runner never imports Locust, whose gevent patching would leak into
this process).
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
from csv import DictReader
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bank_loadtest.runner import failed_examples, run_load
from bankops.processes import Service, free_port

pytestmark = pytest.mark.slow

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
        yield Api(url, workdir / "bank-api.log")
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
