"""Classroom scenarios (scenarios/): the catalogue and its lesson pages, each database fault
caused and undone on a real PostgreSQL, and the scenario service as a process, killed with
SIGKILL in the middle of each database fault. The whole scenarios under load, on the native
stack, are in test_scenarios_live.py."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import promql_parser
import pytest
import yaml
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from bank_api.cli import migrate
from bank_api.core import embedded
from bank_scenarios import catalogue, lessons, mechanisms
from bank_scenarios.catalogue import CatalogueError
from bankops.processes import LOOPBACK, Service, free_port

REPO = Path(__file__).resolve().parents[1]
INDEX = "ix_ledger_entries_account_id_id"


# ------------------------------------------------------------------ the catalogue


def alert_rules() -> dict[str, dict]:
    rules = {}
    for name in ("alerts.yml", "slo-rules.yml"):
        for group in yaml.safe_load((REPO / name).read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules.setdefault(rule["alert"], {}).update(rule.get("labels", {}))
    return rules


def test_the_issue_incidents_are_all_there() -> None:
    kinds = {f.kind for s in catalogue.load_all().values() for f in s.faults}
    assert set(catalogue.names()) >= {"error-burst", "slow-route", "lock-held", "missing-index",
                                      "connections-refused", "traffic-spike"}
    assert kinds >= {"fault_switch", "table_lock", "missing_index", "connections_refused",
                     "load_spike"}


@pytest.mark.parametrize("name", catalogue.names())
def test_each_scenario_is_complete_and_names_real_things(name: str) -> None:
    scenario = catalogue.load(name)
    for fault in scenario.faults:
        mechanisms.check_fault(fault)
    answer = catalogue.answer(scenario)
    assert scenario.questions and len(answer.answers) == len(scenario.questions)
    assert answer.summary and all(answer.answers)
    slos = {o["name"] for o in yaml.safe_load((REPO / "slos.yml").read_text())["objectives"]}
    rules = alert_rules()
    assert any(s.kind == "alert" for s in scenario.signals) or name == "missing-index"
    for expected in scenario.signals:
        if expected.kind == "alert":
            assert expected.match["alert"] in rules, expected.match["alert"]
            assert expected.match.get("labels", {}).get("slo", next(iter(slos))) in slos
            assert expected.within and expected.resolves_within
        if expected.kind == "metric":
            promql_parser.parse(expected.match["expr"])
        if expected.kind == "exemplar":
            promql_parser.parse(expected.match["metric"])
    for runbook in scenario.runbooks:
        assert (REPO / "docs" / "runbooks" / f"{runbook}.md").is_file()


def test_the_lesson_pages_are_what_the_catalogue_gives() -> None:
    assert lessons.write(check=True) == [], "run: python -m bank_scenarios lessons"


def test_phases_and_load_steps_follow_the_faults_and_the_speed() -> None:
    spike = catalogue.load("traffic-spike")
    assert [name for name, _, _ in spike.phases(1)] == ["baseline", "payday spike", "recovery"]
    assert spike.phases(3)[1][1:] == (20.0, 50.0)
    assert spike.load_steps(3) == [{"at": 0.0, "users": 10, "spawn_rate": 5.0},
                                   {"at": 20.0, "users": 1500, "spawn_rate": 300.0},
                                   {"at": 50.0, "users": 10, "spawn_rate": 300.0}]
    overlapping = catalogue.load("missing-index").phases(1)
    assert [n for n, _, _ in overlapping] == [
        "baseline", "index dropped", "index dropped + accounts imported", "index dropped",
        "recovery"]


GOOD = """
title = "t"
story = "s"
duration = "3m"
questions = ["q"]
[load]
users = 1
spawn_rate = 1
[[faults]]
name = "f"
kind = "table_lock"
start = "10s"
stop = "20s"
summary = "x"
table = "ledger_entries"
mode = "SHARE"
[[signals]]
kind = "alert"
what = "w"
alert = "ErrorBudgetFastBurn"
within = "60s"
"""


@pytest.mark.parametrize(("change", "message"), [
    (('kind = "table_lock"', 'kind = "rm_rf"'), "is not one of"),
    (('stop = "20s"', 'stop = "5s"'), "must stop after it starts"),
    (('stop = "20s"', 'stop = "20m"'), "within 15 min"),
    (('duration = "3m"', 'duration = "15s"'), "before the scenario ends"),
    (('mode = "SHARE"', 'mode = "SHARE; DROP TABLE accounts"'), "mode must be one of"),
    (('table = "ledger_entries"', 'table = "x"\nsql = "DROP TABLE accounts"'), r"not \['sql'\]"),
    (('within = "60s"', ""), "needs `alert` and `within`"),
    (('story = "s"', 'story = "s"\ncolour = "red"'), "unknown keys"),
    (('title = "t"', 'title = "t'), "not TOML"),
])
def test_a_bad_entry_is_refused_with_its_reason(change: tuple[str, str], message: str) -> None:
    catalogue.parse(GOOD, "good")
    with pytest.raises(CatalogueError, match=message):
        catalogue.parse(GOOD.replace(*change), "bad")


def test_a_table_or_index_outside_the_schema_is_refused() -> None:
    bad = catalogue.parse(GOOD.replace('"ledger_entries"', '"pg_authid"'), "bad")
    with pytest.raises(ValueError, match="no table"):
        mechanisms.check_fault(bad.faults[0])
    primary_key = catalogue.Fault("f", "missing_index", 0, 1, "x", {"index": "pk_accounts"})
    with pytest.raises(ValueError, match="not a secondary index"):
        mechanisms.check_fault(primary_key)


# ------------------------------------------------------------------ a real PostgreSQL


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A migrated bank database on an embedded server of this module's own (its superuser,
    as the stack's owner login is)."""
    data_dir = Path(tempfile.mkdtemp(prefix="bank-scenarios-")) / "postgres"
    url = embedded.start(data_dir)
    migrate(url)
    yield url
    embedded.stop(data_dir)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def targets(database_url: str) -> mechanisms.Targets:
    # The database faults need no API.
    return mechanisms.Targets(make_url(database_url), "http://127.0.0.1:9", "unused")


def lock_holder(url: str) -> str | None:
    with create_engine(url).connect() as connection:
        return connection.scalar(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.relation = 'ledger_entries'::regclass AND l.mode = 'ShareLock' "
            "AND l.granted"))


def can_write_ledger(url: str) -> bool:
    """Whether an INSERT's lock on ledger_entries is free now (nothing is written)."""
    with create_engine(url).connect() as connection, connection.begin() as transaction:
        try:
            connection.execute(text("LOCK TABLE ledger_entries IN ROW EXCLUSIVE MODE NOWAIT"))
            return True
        except OperationalError:
            return False
        finally:
            transaction.rollback()


def index_present(url: str) -> bool:
    with create_engine(url).connect() as connection:
        return bool(connection.scalar(text(
            "SELECT count(*) FROM pg_indexes WHERE indexname = :i"), {"i": INDEX}))


def can_connect(url: str) -> bool:
    try:
        with create_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False


def eventually(check, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def holding(applied: mechanisms.Applied) -> threading.Thread:
    thread = threading.Thread(target=applied.hold, daemon=True)
    thread.start()
    return thread


def fault(scenario: str, kind: str) -> catalogue.Fault:
    return next(f for f in catalogue.load(scenario).faults if f.kind == kind)


def test_a_held_lock_blocks_writes_until_its_deadline(targets, database_url) -> None:
    # Deadlines of a few seconds: long enough for the checks on a busy machine.
    thread = holding(mechanisms.applied(targets, "t", fault("lock-held", "table_lock"), 4))
    assert eventually(lambda: lock_holder(database_url) == "bank-scenario:t:table_lock")
    assert not can_write_ledger(database_url)
    thread.join(timeout=10)
    assert lock_holder(database_url) is None and can_write_ledger(database_url)


def test_a_dropped_index_is_rebuilt_at_once_when_stopped_early(targets, database_url) -> None:
    applied = mechanisms.applied(targets, "t", fault("missing-index", "missing_index"), 60)
    thread = holding(applied)
    assert eventually(lambda: not index_present(database_url))
    applied.stop()
    thread.join(timeout=10)
    assert not thread.is_alive() and index_present(database_url)


def test_a_closed_database_reopens_at_its_deadline(targets, database_url) -> None:
    kept = create_engine(database_url).connect()  # an open session: it is ended too
    thread = holding(mechanisms.applied(
        targets, "t", fault("connections-refused", "connections_refused"), 5))
    assert eventually(lambda: not can_connect(database_url))
    with pytest.raises(OperationalError, match="not currently accepting connections"):
        create_engine(database_url).connect()
    with pytest.raises(OperationalError):
        kept.execute(text("SELECT 1"))
    thread.join(timeout=10)
    assert can_connect(database_url)


def test_heal_repairs_what_a_killed_statement_could_leave(targets, database_url) -> None:
    admin = create_engine(make_url(database_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with create_engine(database_url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f"DROP INDEX {INDEX}"))
    with admin.connect() as connection:
        connection.execute(text('ALTER DATABASE bank ALLOW_CONNECTIONS false'))
    assert sorted(targets.heal()) == ["database bank allows connections again",
                                      f"index {INDEX} rebuilt"]
    assert index_present(database_url) and can_connect(database_url)
    assert targets.heal() == []


# ------------------------------------------------------------------ the service, a process


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    process = Service("scenarios", [sys.executable, "-m", "bank_scenarios", "serve"],
                      log_path=tmp_path / "scenarios.log",
                      ready_url=f"http://{LOOPBACK}:{port}/health", timeout=30,
                      env={"DATABASE_URL": database_url, "API_URL": "http://127.0.0.1:9",
                           "ADMIN_TOKEN": "unused-for-database-faults",
                           "HOST": LOOPBACK, "PORT": str(port)})
    process.url = f"http://{LOOPBACK}:{port}"
    with process:
        yield process


def test_the_service_answers_problems_for_bad_requests(service) -> None:
    names = [s["name"] for s in httpx.get(f"{service.url}/scenarios").json()["scenarios"]]
    assert names == catalogue.names()
    for response, status, code in [
        (httpx.get(f"{service.url}/scenarios/nope"), 404, "unknown_scenario"),
        (httpx.post(f"{service.url}/runs", json={"scenario": "nope"}), 404, "unknown_scenario"),
        (httpx.post(f"{service.url}/runs", json={"scenario": "lock-held", "speed": 0}), 422,
         "validation_error"),
        (httpx.post(f"{service.url}/runs", json={"scenario": "lock-held", "sql": "x"}), 422,
         "validation_error"),
        (httpx.delete(f"{service.url}/runs/current"), 404, "no_run"),
    ]:
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code
    assert "bank_scenario_running 0.0" in httpx.get(f"{service.url}/metrics").text


def test_one_run_at_a_time_and_stop_undoes_it_now(service, database_url) -> None:
    run = httpx.post(f"{service.url}/runs", json={"scenario": "missing-index", "speed": 10})
    assert run.status_code == 201, run.text
    busy = httpx.post(f"{service.url}/runs", json={"scenario": "lock-held"})
    assert busy.status_code == 409 and busy.json()["code"] == "scenario_running"
    assert eventually(lambda: not index_present(database_url))
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'bank_scenario_phase{phase="index dropped",scenario="missing-index"} 1.0' in metrics
    assert 'bank_scenario_fault_active{fault="index dropped"' in metrics
    stopped = httpx.delete(f"{service.url}/runs/current", timeout=40).json()
    assert stopped["state"] == "stopped"
    assert {f["state"] for f in stopped["faults"]} <= {"undone"}
    assert index_present(database_url)
    metrics = httpx.get(f"{service.url}/metrics").text
    assert "bank_scenario_running 0.0" in metrics and "bank_scenario_phase{" not in metrics
    assert ('bank_scenario_runs_total{outcome="stopped",scenario="missing-index"} 1.0'
            in metrics)


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "faulty", "recovered"), [
    ("lock-held", lambda url: not can_write_ledger(url), can_write_ledger),
    ("missing-index", lambda url: not index_present(url), index_present),
    ("connections-refused", lambda url: not can_connect(url), can_connect),
])
def test_sigkill_mid_fault_leaves_it_undone_by_its_deadline(
        service, database_url, scenario, faulty, recovered) -> None:
    """The process holding the fault dies without a word; the fault still ends on time."""
    run = httpx.post(f"{service.url}/runs", json={"scenario": scenario, "speed": 10}).json()
    first = run["faults"][0]
    assert eventually(lambda: faulty(database_url), timeout=first["start"] - time.time() + 10)
    service.signal(signal.SIGKILL)
    service.wait(10)
    assert faulty(database_url), "the fault should outlive its runner until the deadline"
    deadline = first["end"] + 3  # a statement ends within moments of its sleep
    assert eventually(lambda: recovered(database_url), timeout=deadline - time.time())
    print(f"{scenario}: recovered {time.time() - first['end']:+.1f} s from its deadline")


# ------------------------------------------------------------------ the command line


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bank_scenarios", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_list_and_show_with_and_without_the_answers() -> None:
    listed = cli("list")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == catalogue.names()
    scenario = catalogue.load("lock-held")
    shown = cli("show", "lock-held")
    assert shown.returncode == 0 and scenario.questions[0] in shown.stdout
    assert catalogue.answer(scenario).answers[0] not in shown.stdout
    assert catalogue.answer(scenario).answers[0] in cli("show", "lock-held", "--answers").stdout


@pytest.mark.parametrize(("args", "message"), [
    (("run", "nope"), "no scenario 'nope'"),
    (("show", "../alerts"), "no scenario"),
    (("run", "lock-held", "--service-url", f"http://{LOOPBACK}:9"), "does not answer"),
    (("stop", "--service-url", f"http://{LOOPBACK}:9"), "does not answer"),
])
def test_mistakes_get_a_message_not_a_traceback(args: tuple[str, ...], message: str) -> None:
    done = cli(*args)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
