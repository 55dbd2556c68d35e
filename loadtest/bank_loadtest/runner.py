"""One load run against a running API, then a check that the money is still right.

    python -m bank_loadtest --host http://127.0.0.1:8000 --shape steady --users 20 \\
        --duration 60s
    python -m bank_loadtest --host http://127.0.0.1:8000 --shape spike --workers 2 \\
        --database-url postgresql+psycopg2://bank:secret@127.0.0.1:5432/bank
    python -m bank_loadtest --host http://127.0.0.1:8000 --scenario lock-held --scenario-speed 3

What it does:
1. runs Locust for the chosen shape and time: a master with its web UI up (--autostart
   --autoquit), so Prometheus can scrape /export/prometheus during the run, and with
   --workers N that many local worker processes; or, with --scenario, for a classroom
   scenario: the master asks the scenario service to run it (scenario_picker.py), follows
   its load steps and ends with it;
2. prints a progress line every 5 s (elapsed, users, requests, rate, failures);
3. writes into the run folder: locust_stats.csv, locust_stats_history.csv (per request name),
   locust_failures.csv, report.html, the Locust logs, run.json (options, times, versions,
   totals, verdict) and invariants.json; and, from the Locust file itself (request_ids.py,
   beside --csv's files, written by the master once the workers' last reports are in),
   locust_request_ids.json: the X-Request-ID of the slowest and of some failed requests per
   request name, to look up in the API's logs;
4. checks the money invariants: in SQL with --database-url (bank_api.audit, the API's own
   books check), otherwise through the API (api_books.py);
5. exits 1, loudly, if the books do not balance, could not be checked, or too many requests
   failed (--max-failure-ratio).

Importable too: run_load(...) does all of it and returns the run folder; the verdict is in
its run.json. This module does not import Locust (which patches the standard library for
gevent): Locust runs in child processes (bankops.processes.Service), loading locustfile.py
by its path.
"""

import argparse
import contextlib
import csv
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

import httpx

from bank_api.audit import check_database
from bank_loadtest import api_books
from bankops.processes import LOOPBACK, Service, free_port

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE.parent / "locustfile.py"  # loadtest/locustfile.py, where Locust users look
SHAPES = ("steady", "ramp", "spike", "step", "smoke")
PROGRESS_EVERY = 5.0  # seconds
# The web UI stays up this long after the load stops, so a 5 s Prometheus scrape sees the end.
DEFAULT_LINGER = 6
# Beyond the planned duration: worker start-up, autoquit, the HTML report.
OVERRUN_MARGIN = 90.0
# Seconds a Locust process has to stop on SIGTERM (writing its reports) before SIGKILL.
STOP_TIMEOUT = 15
DEFAULT_SCENARIO_SERVICE = "http://127.0.0.1:8090"  # the native stack's (Ports.scenarios)
# How scenario_picker.py begins the log line of a scenario it could not start (repeated here:
# the runner never imports Locust's side).
SCENARIO_REFUSED = "scenario refused"


def parse_duration(text: str | int | float) -> float:
    """Seconds in '90', '90s', '5m', '1h30m'."""
    if isinstance(text, int | float):
        return float(text)
    match = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*", text)
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (examples: 90, 90s, 5m, 1h30m)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def versions(host: str) -> dict:
    found = {"python": platform.python_version(), "platform": platform.platform(),
             "locust": metadata.version("locust")}
    try:
        found["api"] = httpx.get(f"{host}/openapi.json", timeout=5).json()["info"]["version"]
    except (httpx.HTTPError, ValueError, KeyError):
        found["api"] = None
    try:
        found["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        found["git_commit"] = None
    return found


def wait_for_api(host: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{host}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API at {host} is not ready (GET /health/ready): "
                               "start it first")
        time.sleep(0.5)


def progress_line(elapsed: float, report: dict | None) -> str:
    if report is None:
        return f"[{elapsed:5.0f}s] the Locust master does not answer (starting or finishing)"
    total = next((s for s in report.get("stats", []) if s["name"] == "Aggregated"), {})
    requests, failures = total.get("num_requests", 0), total.get("num_failures", 0)
    ratio = failures / requests if requests else 0.0
    workers = f"  workers {report['worker_count']}" if "worker_count" in report else ""
    return (f"[{elapsed:5.0f}s] {report.get('state', '?'):9} users {report.get('user_count', 0):4}"
            f"{workers}  requests {requests:7}  {report.get('current_rps', 0.0):7.1f} req/s"
            f"  failures {failures} ({ratio:.2%})")


def read_totals(stats_csv: Path) -> dict:
    """The Aggregated row of locust_stats.csv: what the whole run did."""
    with stats_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    per_name = {f"{r['Type']} {r['Name']}": int(r["Request Count"])
                for r in rows if r["Name"] != "Aggregated"}
    total = next(r for r in rows if r["Name"] == "Aggregated")
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    return {"requests": requests, "failures": failures,
            "failure_ratio": failures / requests if requests else 0.0,
            "requests_per_second": float(total["Requests/s"]),
            "median_ms": float(total["Median Response Time"]),
            "p95_ms": float(total["95%"]) if total.get("95%", "N/A") != "N/A" else None,
            "requests_by_name": per_name}


def failed_examples(run_dir: Path, limit: int = 3) -> list[str]:
    """A few failed requests from locust_request_ids.json, one line each, to look up in the
    API's logs by their request id; [] when none failed or the file is missing."""
    try:
        kept = json.loads((run_dir / "locust_request_ids.json").read_text())["names"]
    except (OSError, ValueError, KeyError):
        return []
    lines = []
    for entry in kept:
        for failure in entry["failures"]:
            for sample in failure["requests"][-1:]:  # the newest of each reason
                lines.append(f"request_id={sample['request_id']}  {entry['method']} "
                             f"{entry['name']}  status {sample['status']}  {failure['reason']}")
    return lines[:limit]


@dataclass(frozen=True)
class ScenarioPlan:
    """A classroom scenario as a load run starts it, from the scenario service's catalogue."""

    name: str
    title: str
    speed: float
    service_url: str
    users: int  # its first load step: Locust starts with these, then follows the steps
    spawn_rate: float
    duration: float  # seconds, at this speed

    def locust_args(self) -> list[str]:
        return ["--users", str(self.users), "--spawn-rate", f"{self.spawn_rate:g}",
                "--scenario", self.name, "--scenario-speed", f"{self.speed:g}"]


def scenario_plan(name: str, speed: float, service_url: str) -> ScenarioPlan:
    """GET /scenarios/{name}: a ValueError if there is no such scenario, a RuntimeError if
    the service does not answer."""
    if not speed > 0:
        raise ValueError(f"scenario speed {speed}: must be above 0")
    url = service_url.rstrip("/")
    try:
        answer = httpx.get(f"{url}/scenarios/{quote(name, safe='')}", timeout=10)
    except httpx.TransportError as exc:
        raise RuntimeError(f"the scenario service at {url} does not answer ({exc}): start it "
                           "(python -m bank_scenarios serve; the stack runs it) or give "
                           "--scenario-service-url") from None
    if answer.status_code == 404:
        raise ValueError(f"the scenario service at {url} has no scenario {name!r}: "
                         f"{problem_detail(answer) or 'see python -m bank_scenarios list'}")
    if answer.status_code != 200:
        raise RuntimeError(f"the scenario service at {url} answered {answer.status_code} to "
                           f"GET /scenarios/{name}: {problem_detail(answer)}")
    entry = answer.json()
    return ScenarioPlan(name=name, title=entry["title"], speed=speed, service_url=url,
                        users=int(entry["users"]), spawn_rate=float(entry["spawn_rate"]),
                        duration=float(entry["duration"]) / speed)


def problem_detail(answer: httpx.Response) -> str:
    try:
        return answer.json().get("detail", "")
    except (ValueError, AttributeError):
        return answer.text[:200]


def scenario_refusals(locust_log: Path) -> list[str]:
    """Why the Locust master did not run its scenario, from its log (scenario_picker.py)."""
    try:
        lines = locust_log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[line.index(SCENARIO_REFUSED):] for line in lines if SCENARIO_REFUSED in line]


def check_books(host: str, database_url: str | None, api_check_limit: int) -> dict:
    """The money invariants' verdict (invariants.json): in SQL with a database URL, else
    through the API. A check that crashed has not shown the books are right: not_checked."""
    method = "sql" if database_url else "api"
    try:
        if database_url:
            return check_database(database_url).verdict()
        return api_books.check_api(host, limit=api_check_limit)
    except Exception as exc:
        return api_books.not_checked(method, f"{type(exc).__name__}: {exc}")


def run_load(
    host: str,
    shape: str = "steady",
    users: int | None = None,
    duration: str | float | None = None,
    spawn_rate: float | None = None,
    run_dir: str | Path | None = None,
    workers: int = 0,
    database_url: str | None = None,
    max_failure_ratio: float = 0.01,
    think_time: str | None = None,
    web_host: str = "127.0.0.1",
    web_port: int = 8089,
    linger: int = DEFAULT_LINGER,
    api_check_limit: int = api_books.API_ACCOUNT_LIMIT,
    scenario: str | None = None,
    scenario_speed: float = 1.0,
    scenario_service_url: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run Locust against `host`, check the invariants, return the run folder.

    users/duration default to the shape's own (20 users for 60 s; smoke: 3 users for 20 s).
    With a scenario (its name in the scenario service's catalogue, at scenario_service_url,
    default SCENARIO_SERVICE_URL or DEFAULT_SCENARIO_SERVICE) there is no shape: the scenario
    sets the users over time and the duration (its own / scenario_speed), so users,
    duration and spawn_rate must stay None.
    run_dir defaults to runs/<UTC time> under the current directory.
    The verdict is run.json's "verdict": {"passed": bool, "problems": [...]}.
    """
    plan = None
    if scenario:
        if users is not None or duration is not None or spawn_rate is not None:
            raise ValueError(f"scenario {scenario}: it sets the users and the duration, "
                             "give no users, duration or spawn rate")
        plan = scenario_plan(scenario, scenario_speed,
                             scenario_service_url or default_scenario_service())
    elif shape not in SHAPES:
        raise ValueError(f"shape {shape!r}: choose one of {', '.join(SHAPES)}")
    host = host.rstrip("/")
    wait_for_api(host)
    started = datetime.now(UTC)
    run_dir = Path(run_dir or Path("runs") / started.strftime("%Y%m%dT%H%M%SZ")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)

    if plan is not None:
        planned = plan.duration
    else:
        planned = parse_duration(duration) if duration is not None else (
            20.0 if shape == "smoke" else 60.0)
    env = locust_env(None if plan else shape, users, duration, planned, spawn_rate, think_time,
                     plan)
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    master_port = free_port() if workers else None
    master_cmd = master_command(locust, host, run_dir, linger, web_host, web_port, workers,
                                master_port, plan)
    options = {"host": host, "shape": None if plan else shape, "users": users,
               "duration_seconds": planned, "spawn_rate": spawn_rate, "workers": workers,
               "think_time": think_time, "web_port": web_port,
               "max_failure_ratio": max_failure_ratio,
               "invariants_via": "sql" if database_url else "api",
               "scenario": plan.name if plan else None,
               "scenario_speed": plan.speed if plan else None,
               "scenario_service_url": plan.service_url if plan else None}
    what = (f"scenario {plan.name} ({plan.title}) at speed {plan.speed:g}" if plan
            else shape)
    log(f"load run: {what} on {host} for {planned:.0f}s"
        f"{f' with {workers} workers' if workers else ''}; results in {run_dir}")
    log(f"Locust web UI and /export/prometheus on http://{web_host or '0.0.0.0'}:{web_port}")

    # Each in a session of its own; stopping one (SIGTERM: Locust then writes its reports)
    # also stops whatever it started.
    master = Service("locust master", master_cmd, log_path=run_dir / "locust.log", env=env,
                     cwd=run_dir, timeout=STOP_TIMEOUT)
    children = [master, *(
        Service(f"locust worker {n}",
                [*locust, "--worker", "--master-host", LOOPBACK, "--master-port",
                 str(master_port)],
                log_path=run_dir / f"locust-worker-{n}.log", env=env, cwd=run_dir,
                timeout=STOP_TIMEOUT)
        for n in range(1, workers + 1))]
    run_locust(children, planned + linger, f"http://{LOOPBACK}:{web_port}/stats/requests", log)
    ended = datetime.now(UTC)

    stats_csv = run_dir / "locust_stats.csv"
    totals = read_totals(stats_csv) if stats_csv.exists() else {}
    problems = locust_problems(master.returncode, totals, max_failure_ratio)
    if plan is not None:
        problems = scenario_refusals(run_dir / "locust.log") + problems

    log("checking the money invariants " + ("in SQL" if database_url else "through the API"))
    books = check_books(host, database_url, api_check_limit)
    (run_dir / "invariants.json").write_text(json.dumps(books, indent=2) + "\n")
    problems += books_problems(books)

    summary = {
        "options": options,
        "started_at": started.isoformat(timespec="seconds"),
        "ended_at": ended.isoformat(timespec="seconds"),
        "versions": versions(host),
        "locust_exit_code": master.returncode,
        "totals": totals,
        "invariants": books["verdict"],
        "verdict": {"passed": not problems, "problems": problems},
        "request_ids": "locust_request_ids.json" if (run_dir / "locust_request_ids.json").exists()
        else None,
    }
    (run_dir / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return run_dir


def default_scenario_service() -> str:
    return os.environ.get("SCENARIO_SERVICE_URL") or DEFAULT_SCENARIO_SERVICE


def locust_env(shape: str | None, users: int | None, duration: str | float | None,
               planned: float, spawn_rate: float | None, think_time: str | None,
               scenario: ScenarioPlan | None = None) -> dict[str, str]:
    """The changes to our environment for the Locust processes: the shape (None: none, as
    with a scenario, whose steps are the load), only the options given (locustfile.py and its
    shapes have defaults for the others), and where the scenario service is."""
    env = {"LOAD_SHAPE": shape or "", "PYTHONUNBUFFERED": "1"}
    if users is not None:
        env["LOAD_USERS"] = str(users)
    if duration is not None:
        env["LOAD_DURATION"] = str(int(planned))
    if spawn_rate is not None:
        env["LOAD_SPAWN_RATE"] = str(spawn_rate)
    if think_time is not None:
        env["LOAD_THINK_TIME"] = think_time
    if scenario is not None:
        env["SCENARIO_SERVICE_URL"] = scenario.service_url
    return env


def master_command(locust: list[str], host: str, run_dir: Path, linger: int, web_host: str,
                   web_port: int, workers: int, master_port: int | None,
                   scenario: ScenarioPlan | None = None) -> list[str]:
    """The Locust master's command line: it starts the load by itself, keeps its web UI up
    `linger` seconds after it (for Prometheus), writes the reports, with workers waits
    for them on master_port, and with a scenario starts it and ends with it."""
    master_cmd = [
        *locust, "--host", host,
        "--autostart", "--autoquit", str(linger),
        "--web-host", web_host, "--web-port", str(web_port),
        "--csv", str(run_dir / "locust"), "--csv-full-history",
        "--html", str(run_dir / "report.html"),
        # Failures are judged against --max-failure-ratio (locust_problems), not by Locust's
        # exit code.
        "--exit-code-on-error", "0",
    ]
    if workers:
        master_cmd += ["--master", "--master-bind-host", LOOPBACK,
                       "--master-bind-port", str(master_port), "--expect-workers", str(workers),
                       "--expect-workers-max-wait", "60"]
    if scenario is not None:
        master_cmd += scenario.locust_args()
    return master_cmd


def run_locust(children: list[Service], run_seconds: float, status_url: str,
               log: Callable[[str], None]) -> None:
    """Start the master (children[0]) and its workers, log progress until the master quits,
    then stop them all, even on an error or Ctrl-C, so no process outlives the run."""
    master = children[0]
    try:
        for child in children:
            child.start()
        log_progress_until_done(master, run_seconds, status_url, log)
        for worker in children[1:]:  # workers quit when the master tells them to
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(15)
    finally:
        # The workers first; the master's exit code is the one that matters (it has ended by
        # itself here, unless something went wrong above).
        for child in reversed(children):
            child.stop()


def log_progress_until_done(master: Service, run_seconds: float, status_url: str,
                            log: Callable[[str], None]) -> None:
    """A progress line every PROGRESS_EVERY seconds while the master runs; a RuntimeError if
    it runs OVERRUN_MARGIN seconds longer than planned (run_seconds)."""
    clock = time.monotonic()
    deadline = clock + run_seconds + OVERRUN_MARGIN
    while master.running():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Locust still running {OVERRUN_MARGIN:.0f}s past its planned "
                               "end: stopped it")
        log(progress_line(time.monotonic() - clock, status_report(status_url)))
        with contextlib.suppress(subprocess.TimeoutExpired):
            master.wait(PROGRESS_EVERY)


def status_report(status_url: str) -> dict | None:
    """The Locust master's live statistics; None while it does not answer."""
    try:
        return httpx.get(status_url, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None


def locust_problems(returncode: int | None, totals: dict, max_failure_ratio: float) -> list[str]:
    """What makes the run fail on Locust's side: it crashed, did nothing, or too many
    requests failed."""
    problems: list[str] = []
    if returncode != 0:
        problems.append(f"Locust exited with code {returncode} (see locust.log)")
    if not totals.get("requests"):
        problems.append("no requests were made")
    elif totals["failure_ratio"] > max_failure_ratio:
        problems.append(f"failure ratio {totals['failure_ratio']:.2%} is above "
                        f"{max_failure_ratio:.2%} (see locust_failures.csv)")
    return problems


def books_problems(books: dict) -> list[str]:
    """What makes the run fail on the books' side: an invariant broken, or not checked."""
    if books["verdict"] == "fail":
        return [f"money invariant broken: {p}" for p in books["problems"]]
    if books["verdict"] != "pass":
        return [f"money invariants not checked: {books['reason']}"]
    return []


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bank_loadtest", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="http://127.0.0.1:8000", help="the API's base URL")
    parser.add_argument("--shape", choices=SHAPES, help="how the users come and go "
                        "(default steady)")
    parser.add_argument("--users", type=int, help="peak users (default 20; smoke 3)")
    parser.add_argument("--duration", help="e.g. 90s, 5m (default 60s; smoke 20s)")
    parser.add_argument("--spawn-rate", type=float, help="users started per second")
    parser.add_argument("--think-time", help="seconds between a user's actions, MIN-MAX "
                        "(default 0.5-2)")
    parser.add_argument("--run-dir", help="where results go (default runs/<UTC time>, under "
                        "the current directory)")
    parser.add_argument("--workers", type=int, default=0, help="local Locust worker processes")
    parser.add_argument("--database-url", help="check the invariants in SQL (else via the API)")
    parser.add_argument("--max-failure-ratio", type=float, default=0.01)
    parser.add_argument("--web-host", default="127.0.0.1",
                        help="where the Locust web UI listens (0.0.0.0 in a container)")
    parser.add_argument("--web-port", type=int, default=8089)
    parser.add_argument("--linger", type=int, default=DEFAULT_LINGER,
                        help="seconds the web UI stays up after the load stops")
    parser.add_argument("--scenario", help="a classroom scenario (python -m bank_scenarios "
                        "list): the scenario service runs its faults, its load steps set the "
                        "users and its length the duration (no --shape, --users, --duration, "
                        "--spawn-rate)")
    parser.add_argument("--scenario-speed", type=float, default=1.0,
                        help="the scenario this much faster than written (1 in class, 3 in CI)")
    parser.add_argument("--scenario-service-url", default=default_scenario_service(),
                        help="the scenario service (default SCENARIO_SERVICE_URL, else "
                        f"{DEFAULT_SCENARIO_SERVICE})")
    args = parser.parse_args(argv)
    if args.scenario and any(value is not None for value in (
            args.shape, args.users, args.duration, args.spawn_rate)):
        parser.error("--scenario sets the load: give no --shape, --users, --duration or "
                     "--spawn-rate")

    # SIGTERM (a benchmark or a process manager stopping this run) is handled like Ctrl-C:
    # run_load then stops Locust, so no child outlives the run.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_dir = run_load(
            args.host, shape=args.shape or "steady", users=args.users,
            duration=args.duration, spawn_rate=args.spawn_rate, run_dir=args.run_dir,
            workers=args.workers, database_url=args.database_url,
            max_failure_ratio=args.max_failure_ratio, think_time=args.think_time,
            web_host=args.web_host, web_port=args.web_port, linger=args.linger,
            scenario=args.scenario, scenario_speed=args.scenario_speed,
            scenario_service_url=args.scenario_service_url,
        )
    except (RuntimeError, ValueError) as exc:
        print(f"load run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("load run interrupted: Locust stopped", file=sys.stderr)
        return 130
    summary = json.loads((run_dir / "run.json").read_text())
    totals = summary["totals"]
    if totals:
        print(f"{totals['requests']} requests, {totals['requests_per_second']:.1f} req/s, "
              f"{totals['failures']} failures ({totals['failure_ratio']:.2%}), "
              f"median {totals['median_ms']:.0f} ms; invariants: {summary['invariants']}")
    examples = failed_examples(run_dir)
    if examples:
        print("failed requests to look up in the API's logs (more in locust_request_ids.json):")
        for line in examples:
            print(f"  {line}")
    if summary["verdict"]["passed"]:
        print(f"PASSED: results in {run_dir}")
        return 0
    banner = "!" * 72
    print(f"\n{banner}\nLOAD RUN FAILED", file=sys.stderr)
    for problem in summary["verdict"]["problems"]:
        print(f"  - {problem}", file=sys.stderr)
    print(f"results in {run_dir}\n{banner}", file=sys.stderr)
    return 1

