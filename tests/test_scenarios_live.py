"""Every classroom scenario, end to end, on the native stack under Locust, as a teacher runs
it: `python -m bank_scenarios run NAME --speed 3`. Each must show every signal it declares
within its bound (its expected alert at Alertmanager, the span at the trace receiver, the
log lines, the metric), resolve its alerts, leave no fault behind and the books balanced;
its report must carry the scenario. The times are printed (pytest -s)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from bank_scenarios import catalogue
from bankops.stack.native import NativeStack, Ports

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SPEED = 3  # 2 minutes a scenario; a fault lasts 30 to 50 s, long enough for its page


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    with NativeStack(tmp_path_factory.mktemp("scenario-stack"), ports=Ports.free()) as running:
        yield running


def leftovers(stack: NativeStack) -> list[str]:
    """Whatever a scenario could leave behind, found directly."""
    found = []
    engine = create_engine(stack.database_url)
    with engine.connect() as connection:
        if not connection.scalar(text("SELECT datallowconn FROM pg_database "
                                      "WHERE datname = current_database()")):
            found.append("database closed")
        indexes = set(connection.scalars(text("SELECT indexname FROM pg_indexes")))
        if "ix_ledger_entries_account_id_id" not in indexes:
            found.append("index missing")
        holders = connection.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'bank-scenario%'"))
        if holders:
            found.append(f"{holders} scenario sessions still open")
    engine.dispose()
    switch = httpx.get(f"{stack.api_url}/admin/faults", timeout=10,
                       headers={"Authorization": f"Bearer {stack.secret('ADMIN_TOKEN')}"}).json()
    if switch["error_rate"] or switch["latency_ms"]:
        found.append(f"fault switch on: {switch}")
    return found


@pytest.mark.parametrize("name", catalogue.names())
def test_scenario_end_to_end(stack: NativeStack, tmp_path: Path, name: str) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "bank_scenarios", "run", name, "--speed", str(SPEED),
         "--service-url", stack.scenarios_url, "--api-url", stack.api_url,
         "--prometheus-url", stack.prometheus_url, "--alertmanager-url", stack.alertmanager_url,
         "--locust-port", str(stack.ports.locust), "--stack-dir", str(stack.work_dir),
         "--run-dir", str(run_dir), "--database-url", stack.database_url],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    print(done.stdout[-4000:], done.stderr[-2000:])
    document = json.loads((run_dir / "scenario.json").read_text())
    for signal in document["signals"]:
        assert signal["checked"], signal
        assert signal["passed"], signal
    assert document["outcome"] == "finished" and document["passed"]
    assert {f["state"] for f in document["faults"]} == {"undone"}
    assert json.loads((run_dir / "run.json").read_text())["invariants"] == "pass"
    assert leftovers(stack) == []
    html = (run_dir / "report" / "index.html").read_text()
    assert document["title"] in html and all(f["name"] in html for f in document["faults"])
    assert done.returncode == 0, done.stderr


def test_the_stack_starts_again_on_its_own_work_dir(stack: NativeStack) -> None:
    """A second `make stack` on the same folder (last, it stops the module's stack): the
    logins already exist and require their passwords by then."""
    stack.stop()
    with NativeStack(stack.work_dir, ports=stack.ports) as again:
        assert httpx.get(f"{again.api_url}/health/ready", timeout=10).status_code == 200
        names = httpx.get(f"{again.scenarios_url}/scenarios", timeout=10).json()["scenarios"]
        assert [s["name"] for s in names] == catalogue.names()
