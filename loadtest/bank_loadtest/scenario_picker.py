"""Classroom scenarios from Locust: pick one in the web UI ("Custom parameters") or give
--scenario NAME; the scenario service then runs its faults while Locust runs its load.

    SCENARIO_SERVICE_URL=http://127.0.0.1:8090 locust -f locustfile.py -H http://127.0.0.1:8000
    SCENARIO_SERVICE_URL=... locust -f locustfile.py -H ... --autostart --autoquit 5 \\
        --scenario lock-held --scenario-speed 3

The scenario service (`python -m bank_scenarios serve`, at SCENARIO_SERVICE_URL) holds the
catalogue and the credentials the faults need; Locust only asks it:

- at start, GET /scenarios: the choices of --scenario, a dropdown in the web UI. Fetched once
  with a short timeout: when the service does not answer, or SCENARIO_SERVICE_URL is unset,
  the option is still there, with nothing to choose and a help text that says why.
- when a test starts with a scenario, on the master or a single process (workers only run
  users): POST /runs. The run's load steps then set the user count at their times (the users
  and ramp given to Locust only last until the first step), and the test stops at the run's
  end, which also quits an unattended run (--headless, or --autostart with --autoquit) as a
  load shape's end does.
- when the test stops before the run's end (Stop, Ctrl-C, --run-time, quit):
  DELETE /runs/current, which undoes every fault now.

A scenario the service refuses (another one running, an unknown name, no answer), or one with a
LOAD_SHAPE set (the scenario's steps are the load), stops the test with an error line rather
than load without it; an unattended run then exits with code 1.
"""

import json
import logging
import os
import time
import urllib.error
import urllib.request
from argparse import ArgumentTypeError

import gevent
from locust import events
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

URL_VARIABLE = "SCENARIO_SERVICE_URL"
LIST_TIMEOUT = 2.0  # seconds Locust's start waits at most for the catalogue
CALL_TIMEOUT = 15.0  # starting or stopping a run: the service checks and undoes things first
# At the start of every refusal's log line; the load runner (runner.py) looks for it in
# Locust's log to say why a run failed.
REFUSED = "scenario refused"

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """The scenario service did not answer."""


def service_url() -> str | None:
    return os.environ.get(URL_VARIABLE, "").strip().rstrip("/") or None


def call(method: str, path: str, body: dict | None = None,
         timeout: float = CALL_TIMEOUT) -> tuple[int, dict]:
    """One request to the scenario service: its status and JSON body (a problem's too)."""
    url = service_url()
    if url is None:
        raise ServiceError(f"{URL_VARIABLE} is not set")
    request = urllib.request.Request(
        f"{url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}
    except (OSError, ValueError) as error:  # URLError and timeouts are OSErrors
        reason = getattr(error, "reason", error)
        raise ServiceError(f"the scenario service at {url} did not answer ({reason})") from None


# ------------------------------------------------------------------ the options


_catalogue: tuple[list[str], str | None] | None = None


def catalogue() -> tuple[list[str], str | None]:
    """The scenario names and, when there are none, why. Fetched once per process: Locust
    builds its parser again for every page of its web UI and parses the command line again,
    so the choices must stay those the command line was checked against."""
    global _catalogue
    if _catalogue is None:
        _catalogue = fetch_catalogue()
    return _catalogue


def fetch_catalogue() -> tuple[list[str], str | None]:
    url = service_url()
    if url is None:
        return [], (f"{URL_VARIABLE} is not set: the scenario service "
                    "(python -m bank_scenarios serve, e.g. at http://127.0.0.1:8090) lists them")
    try:
        status, body = call("GET", "/scenarios", timeout=LIST_TIMEOUT)
        if status == 200:
            return [entry["name"] for entry in body["scenarios"]], None
        reason = f"answered {status}"
    except ServiceError as error:
        reason = str(error).removeprefix(f"the scenario service at {url} ")
    except (KeyError, TypeError):
        reason = "answered something else than a list of scenarios"
    return [], (f"the scenario service at {url} ({URL_VARIABLE}) {reason} when Locust "
                "started: start it, then restart Locust")


def scenario_help(problem: str | None) -> str:
    if problem:
        return f"none to choose: {problem}"
    return (f"a classroom scenario from {service_url()}: it injects its faults and its load "
            "steps set the users, instead of the numbers above; empty: a normal run")


def scenario_type(names: list[str], problem: str | None):
    """Checks a name given on the command line (or LOCUST_SCENARIO), with a clear error."""

    def scenario(value: str) -> str:
        value = value.strip()
        if value and problem:
            raise ArgumentTypeError(f"cannot run {value!r}: {problem}")
        if value and value not in names:
            raise ArgumentTypeError(f"unknown scenario {value!r}: choose one of "
                                    f"{', '.join(names)}")
        return value

    return scenario


def positive_speed(value: str) -> float:
    speed = float(value)
    if not speed > 0:
        raise ArgumentTypeError(f"must be above 0, not {value}")
    return speed


@events.init_command_line_parser.add_listener
def add_arguments(parser, **_kwargs) -> None:
    names, problem = catalogue()
    parser.add_argument(
        "--scenario", default="", choices=["", *names], type=scenario_type(names, problem),
        env_var="LOCUST_SCENARIO", include_in_web_ui=True, help=scenario_help(problem))
    parser.add_argument(
        "--scenario-speed", type=positive_speed, default=1.0, env_var="LOCUST_SCENARIO_SPEED",
        include_in_web_ui=True,
        help="how much faster than written the scenario runs: 1 in class, 3 in CI")


# ------------------------------------------------------------------ a test with a scenario


class FollowedRun:
    """This process's side of one scenario run: it follows the load steps, ends the test at
    the run's end, and stops the run when the test ends first."""

    def __init__(self, environment, run: dict, starter: gevent.Greenlet) -> None:
        self.environment, self.run = environment, run
        self.name = run["scenario"]
        self.clock = time.monotonic()  # the run's started_at, on our clock
        self.starter = starter  # the greenlet whose runner.start() began the test
        self.over = False  # the run reached its end: the service has ended it
        self.spawner: gevent.Greenlet | None = None  # our own start() on a master
        self.greenlet = gevent.spawn(self.follow)

    def follow(self) -> None:
        steps = self.run["load"]["steps"]
        duration = self.run["ends_at"] - self.run["started_at"]
        logger.info(f"scenario {self.name} (speed {self.run['speed']:g}) started: run "
                    f"{self.run['id']}, {len(steps)} load steps, ends in {duration:.0f}s")
        try:
            for number, step in enumerate(steps, 1):
                self.sleep_until(step["at"])
                self.apply(step, number, len(steps))
            self.sleep_until(duration)
        except Exception:
            logger.exception(f"scenario {self.name}: following its load failed; stopping")
            # end_test() fires test_stopping, whose listener stops the run (not over)
        else:
            self.over = True
            logger.info(f"scenario {self.name} ended: stopping the test")
        self.end_spawner()
        end_test(self.environment)

    def sleep_until(self, seconds: float) -> None:
        gevent.sleep(max(0.0, self.clock + seconds - time.monotonic()))

    def apply(self, step: dict, number: int, steps: int) -> None:
        runner = self.environment.runner
        users, spawn_rate = int(step["users"]), float(step["spawn_rate"])
        logger.info(f"scenario {self.name}: step {number}/{steps}, {users} users at "
                    f"{spawn_rate:g}/s")
        if number == 1 and runner.target_user_count == users:
            return  # the start that began the test ramps to it already
        if self.starter is not None:
            let_start_end(self.environment, self.starter)
            self.starter = None
        if not isinstance(runner, MasterRunner):
            runner.start(users, spawn_rate)  # replaces a ramp still under way by itself
            return
        # A master's start() blocks while it ramps, and two at once (or one still sending
        # users after a stop) would share one user dispatcher: end ours before the next, as
        # the web UI ends its own.
        self.end_spawner()
        self.spawner = gevent.spawn(runner.start, users, spawn_rate)

    def end_spawner(self) -> None:
        if self.spawner is not None and self.spawner is not gevent.getcurrent():
            self.spawner.kill(block=True)

    def cancel(self) -> None:
        """The test ends before the run: stop following, and stop the run now."""
        if self.greenlet is not gevent.getcurrent():
            self.greenlet.kill(block=True)
        self.end_spawner()
        logger.warning(f"test stopped before scenario {self.name} ended: stopping its run, "
                       "its faults undone now")
        try:
            status, body = call("DELETE", "/runs/current")
        except ServiceError as error:
            logger.error(f"scenario {self.name} not stopped: {error}; its faults end at their "
                         "deadlines")
            return
        if status not in (200, 404):  # 404: none runs, nothing to stop
            logger.error(f"scenario {self.name} not stopped: DELETE /runs/current answered "
                         f"{status} {body.get('code', '')}")


def let_start_end(environment, starter: gevent.Greenlet) -> None:
    """Before a master starts or stops again, end the start() that began the test: killed
    if it is the web UI's (as the UI kills it itself on Stop or a new swarm), else waited
    for (--autostart's, or a key pressed in the terminal). A single process's runner ends
    its own start() (LocalRunner.start and stop)."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or starter is gevent.getcurrent():
        return
    if starter is getattr(environment.web_ui, "_swarm_greenlet", None):
        # Out of the test_start listeners first: the master is "spawning" right after them.
        deadline = time.monotonic() + 5
        while runner.state not in (STATE_SPAWNING, STATE_RUNNING) and not starter.dead \
                and time.monotonic() < deadline:
            gevent.sleep(0.1)
        starter.kill(block=True)
        return
    while not (runner.spawning_completed or starter.dead):
        gevent.sleep(0.2)


def unattended(options) -> bool:
    return bool(options and (options.headless or (options.autostart
                                                  and options.autoquit != -1)))


def end_test(environment) -> None:
    """Stop the test as Locust stops one at its --run-time: an unattended run then quits."""
    runner, options = environment.runner, environment.parsed_options
    if options is not None and options.headless:
        runner.quit()
        return
    runner.stop()
    if unattended(options):
        gevent.sleep(options.autoquit)
        runner.quit()
        if environment.web_ui is not None:
            environment.web_ui.stop()


_followed: FollowedRun | None = None


def start_run(name: str, speed: float) -> tuple[dict | None, str]:
    """POST /runs: the run, or None and why not."""
    try:
        status, body = call("POST", "/runs", {"scenario": name, "speed": speed})
    except ServiceError as error:
        return None, str(error)
    if status == 201:
        return body, ""
    detail = body.get("detail") or body.get("title") or ""
    return None, (f"the scenario service at {service_url()} answered {status} "
                  f"{body.get('code', '')}{f': {detail}' if detail else ''}")


def refuse(environment, name: str, reason: str, starter: gevent.Greenlet) -> None:
    logger.error(f"{REFUSED}: {name}: {reason}. The test is stopped rather than run without "
                 "its scenario")
    if unattended(environment.parsed_options):
        environment.process_exit_code = 1
    if environment.shape_class is not None:
        # Stopping ends the shape; Locust then ends the test as at a shape's end.
        gevent.spawn(environment.runner.stop)
        return

    def stop() -> None:
        let_start_end(environment, starter)
        end_test(environment)

    gevent.spawn(stop)


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    global _followed
    options = environment.parsed_options
    name = getattr(options, "scenario", "") or ""
    if not name or isinstance(environment.runner, WorkerRunner):
        return
    if _followed is not None and not _followed.greenlet.dead:
        return  # our own start() of a step began again: the same test
    starter = gevent.getcurrent()
    if environment.shape_class is not None:
        shape = os.environ.get("LOAD_SHAPE") or type(environment.shape_class).__name__
        refuse(environment, name, f"LOAD_SHAPE={shape} is set, and a scenario's steps are "
               "its load: unset LOAD_SHAPE", starter)
        return
    run, reason = start_run(name, float(getattr(options, "scenario_speed", 1.0)))
    if run is None:
        refuse(environment, name, reason, starter)
        return
    _followed = FollowedRun(environment, run, starter)


@events.test_stopping.add_listener
def on_test_stopping(environment, **_kwargs) -> None:
    global _followed
    followed, _followed = _followed, None
    if followed is not None and not followed.over:
        followed.cancel()
