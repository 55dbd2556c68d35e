"""`python -m bank_scenarios run NAME`: a scenario under load, narrated, then checked.

Natively (the default, against `make stack`): a Locust load run (bank_loadtest) that picks
the scenario, so the Locust master starts it at the scenario service and follows its load
steps, exactly as the web UI's picker does. Meanwhile the terminal says what happens and
which expected alerts reach Alertmanager. After it: every expected signal is looked up
(signals.py), written to scenario.json in the run folder, and the report is generated
with the scenario's windows shaded. Exit 0 when every signal showed within its bound, the
books balance and the faults are gone.

With LOCUST_URL (compose: `docker compose run --rm scenarios run NAME`): the Locust master
already running is told to start with the scenario (its /swarm, as the web UI's Start
button); the narration and the alerts are the same; spans and log lines are for Grafana.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from bank_scenarios import signals
from bank_scenarios.catalogue import Scenario
from bank_scenarios.narration import Narrator

REPO = Path(__file__).resolve().parents[2]
# After the load, how long to keep watching for the alerts to resolve, at most.
SETTLE_MARGIN = 30.0


def _settle(watch: signals.AlertWatch, run: dict, scenario: Scenario) -> None:
    """Wait until every expected alert that fired has resolved, or its bound has passed."""
    last_end = max(f["end"] for f in run["faults"])
    bound = max((s.resolves_within or 0 for s in scenario.signals), default=0)
    deadline = last_end + bound + SETTLE_MARGIN
    while time.time() < deadline and not watch.settled():
        time.sleep(1)


def _not_undone(service_url: str) -> list[str]:
    """The faults the scenario service reports as not undone."""
    run = signals.get_json(f"{service_url}/runs/current")
    return [f"{f['name']}: {f['state']}" for f in run["faults"]
            if f["state"] not in ("undone",)]


def _write(run_dir: Path, scenario: Scenario, run: dict, results: list[dict]) -> dict:
    document = {
        "scenario": scenario.name, "title": scenario.title, "story": scenario.story,
        "speed": run["speed"], "started_at": run["started_at"],
        "ended_at": run.get("ended_at") or run["ends_at"], "outcome": run["state"],
        "phases": run["phases"],
        "faults": [{k: f[k] for k in ("name", "kind", "summary", "start", "end", "state")}
                   for f in run["faults"]],
        "signals": results,
        "passed": all(r["passed"] for r in results) and run["state"] == "finished",
    }
    (run_dir / "scenario.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


def _swarm(locust_url: str, scenario: Scenario, speed: float) -> None:
    """Press Start in the running Locust master's web UI, with the scenario picked."""
    form = urllib.parse.urlencode({"user_count": scenario.users,
                                   "spawn_rate": scenario.spawn_rate,
                                   "scenario": scenario.name, "scenario_speed": speed}).encode()
    with urllib.request.urlopen(f"{locust_url.rstrip('/')}/swarm", data=form,
                                timeout=10) as response:
        answer = json.load(response)
    if not answer.get("success"):
        raise SystemExit(f"Locust at {locust_url} refused to start: {answer.get('message')}")


def _check_service(service_url: str, scenario: Scenario) -> None:
    """The scenario service answers and knows the scenario, or a clear SystemExit."""
    try:
        signals.get_json(f"{service_url.rstrip('/')}/scenarios/{scenario.name}")
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"the scenario service at {service_url} answered {exc.code} for "
                         f"{scenario.name}: restart it after editing the catalogue") from None
    except OSError as exc:
        raise SystemExit(f"the scenario service at {service_url} does not answer ({exc}); "
                         "start the stack first (`make stack`), or give --service-url") from None


def _wait_for_start(narrator: Narrator, locust_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while narrator.run is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"Locust at {locust_url} started no scenario within {timeout:.0f} "
                             "s: its log says why (scenario refused: ...)")
        time.sleep(1)


def main(scenario: Scenario, args: argparse.Namespace) -> int:
    _check_service(args.service_url, scenario)
    narrator = Narrator(scenario, args.service_url).start()
    seen = [signals.Seen(s) for s in scenario.signals if s.kind == "alert"]
    watch = signals.AlertWatch(args.alertmanager_url, seen, narrator.on_alert()).start()
    locust_url = os.environ.get("LOCUST_URL")
    try:
        if locust_url:
            _swarm(locust_url, scenario, args.speed)
            run_dir = None
            _wait_for_start(narrator, locust_url)
            while narrator.run["state"] == "running":
                time.sleep(1)
        else:
            try:
                run_dir = _load_run(scenario, args, narrator)
            except (RuntimeError, ValueError) as exc:  # the API or Locust refused to start
                raise SystemExit(f"the load run did not start: {exc}") from None
            if narrator.run is None:  # Locust ran, but the service refused the scenario
                problems = json.loads((run_dir / "run.json").read_text())["verdict"]
                raise SystemExit(f"the scenario did not start: {problems['problems']}")
        run = signals.get_json(f"{args.service_url.rstrip('/')}/runs/current")
        narrator.run = run
        narrator.say("load over; waiting for the alerts to resolve")
        _settle(watch, run, scenario)
    finally:
        watch.stop()
        narrator.stop()
    stack = Path(args.stack_dir or REPO / ".data" / "native-stack") / "logs"
    sources = signals.Sources(args.prometheus_url,
                              traces=None if locust_url else stack / "traces.jsonl",
                              api_log=None if locust_url else stack / "api.log")
    results = signals.check_after(scenario, run, sources, seen)
    _print_results(narrator, results)
    leftovers = _not_undone(args.service_url.rstrip("/"))
    if run_dir is None:
        return 0 if all(r["passed"] for r in results) and not leftovers else 1
    document = _write(run_dir, scenario, run, results)
    from bank_report.generate import generate

    report = generate(run_dir, prometheus=args.prometheus_url)
    verdict = json.loads((run_dir / "run.json").read_text())["verdict"]
    narrator.say(f"report: {report / 'index.html'}")
    narrator.say(f"books: {'balanced' if verdict['passed'] else verdict['problems']}")
    if leftovers:
        narrator.say(f"NOT UNDONE: {leftovers}")
    return 0 if document["passed"] and verdict["passed"] and not leftovers else 1


def _load_run(scenario: Scenario, args: argparse.Namespace, narrator: Narrator) -> Path:
    from bank_loadtest.runner import run_load

    return run_load(args.api_url, scenario=scenario.name, scenario_speed=args.speed,
                    scenario_service_url=args.service_url, run_dir=args.run_dir,
                    web_port=args.locust_port, database_url=args.database_url,
                    max_failure_ratio=1.0, log=lambda line: None)


def _print_results(narrator: Narrator, results: list[dict]) -> None:
    narrator.say("signals:")
    for result in results:
        if not result["checked"]:
            mark = "not checked here"
        elif result["seen"]:
            mark = f"seen after {result['after_s']:.0f} s"
            if result["resolved_after_s"] is not None:
                mark += f", resolved {result['resolved_after_s']:.0f} s after the fault"
        else:
            mark = "NOT SEEN"
        verdict = "ok " if result["passed"] else "BAD"
        narrator.say(f"  {verdict} {result['kind']:<8} {result['what']}: {mark}")
        narrator.say(f"      {result['detail']}")
