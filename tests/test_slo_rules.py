"""The service level objectives: slos.yml, the rules it generates (slo-rules.yml), their unit
tests with the real promtool, and the routing of pages and tickets with the real amtool.

The live half (a page at Alertmanager under a Locust load, and its resolve) is in
test_live_stack.py."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from bank_api.api.http_metrics import LATENCY_BUCKETS
from bank_api.core.config import Settings
from bank_api.main import create_app
from bankops.slo import rules, spec

REPO = Path(__file__).resolve().parents[1]
SPEC = spec.load()


def run_tool(*argv: str) -> str:
    exe = shutil.which(argv[0])
    assert exe, f"{argv[0]} is not on PATH: scripts/install-observability-tools.sh installs it"
    done = subprocess.run([exe, *argv[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}"
    return done.stdout


# ------------------------------------------------------------------------------ the spec


def test_committed_rules_are_what_the_spec_generates():
    assert rules.RULES.read_text(encoding="utf-8") == rules.render(SPEC), (
        "slo-rules.yml is stale: run .venv/bin/python -m bankops.slo")


def test_the_check_command_catches_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "slo-rules.yml"
    stale.write_text(rules.render(SPEC).replace("0.999", "0.99"), encoding="utf-8")
    monkeypatch.setattr(rules, "RULES", stale)
    from bankops.slo.__main__ import main

    assert main(["--check"]) == 1
    assert main([]) == 0 and main(["--check"]) == 0


def app_routes() -> set[spec.Route]:
    """Every (method, template) the API serves; the docs' static files mount aside."""
    app = create_app(Settings(_env_file=None))
    return {spec.Route(method, context.path)
            for context in iter_route_contexts(app.routes)
            if not isinstance(context.original_route, Mount)
            for method in context.methods or () if method != "HEAD"}


def test_every_route_is_in_an_objective_or_said_not_to_be():
    covered = {route for objective in SPEC.objectives for route in objective.routes}
    named = covered | set(SPEC.not_covered)
    served = app_routes()
    assert served - named == set(), "routes in no objective and not in not_covered"
    assert named - served == set(), "slos.yml names routes the API does not serve"
    assert covered & set(SPEC.not_covered) == set()


def test_money_movements_and_reads_are_what_their_names_say():
    objectives = {o.name: o for o in SPEC.objectives}
    money = objectives["money-movements"].routes
    assert {r.method for r in money} == {"POST"}
    assert {r.method for r in objectives["reads"].routes} == {"GET"}
    latency = set(objectives["latency"].routes)
    assert latency == set(money) | set(objectives["reads"].routes)


def test_latency_thresholds_are_bucket_bounds():
    """The SLI reads the bucket `le` equal to the threshold: a value between two bounds would
    select no series at all."""
    for objective in SPEC.objectives:
        if objective.sli == "latency":
            assert objective.threshold_seconds in LATENCY_BUCKETS
            assert f'le="{objective.threshold_seconds}"' in rules.render(SPEC)


def test_windows_follow_the_workbook_compressed_by_the_time_scale():
    assert SPEC.time_scale == 60 and SPEC.period == 28 * 86400
    assert spec.duration(SPEC.demo_period) == "11h12m"
    table = [(a.severity, spec.duration(p.long), spec.duration(p.short), p.burn_rate)
             for a in SPEC.alerts for p in a.windows]
    assert table == [("critical", "1h", "5m", 14.4), ("critical", "6h", "30m", 6.0),
                     ("warning", "3d", "6h", 1.0)]
    assert [spec.duration(w) for w in SPEC.windows()] == ["30s", "1m", "6m", "1h12m"]


def test_windows_hold_enough_scrapes_and_the_budget_integrates_evaluations():
    config = yaml.safe_load((REPO / "prometheus.yml").read_text(encoding="utf-8"))["global"]
    scrape = spec.seconds(config["scrape_interval"])
    assert SPEC.min_window >= 6 * scrape
    assert spec.seconds(config["evaluation_interval"]) == rules.EVALUATION_SECONDS


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1h12m", 4320), ("28d", 2419200),
                                               ("11h12m", 40320), ("36h", 129600)])
def test_durations_read_and_write_as_prometheus_does(text: str, seconds: int):
    assert spec.seconds(text) == seconds
    assert spec.duration(seconds) == text


@pytest.mark.parametrize("bad", ["", "5", "1x", "m5", "1h 5m"])
def test_a_bad_duration_is_refused(bad: str):
    with pytest.raises(ValueError):
        spec.seconds(bad)


@pytest.mark.parametrize("change", [
    {"objective": 1.0}, {"objective": 0.5}, {"sli": "throughput"},
    {"threshold_seconds": 0.25},  # on an availability objective
])
def test_a_wrong_objective_is_refused(change: dict):
    broken = replace(SPEC, objectives=(replace(SPEC.objectives[0], **change),))
    with pytest.raises(ValueError):
        spec._check(broken)


def test_objective_names_are_unique():
    broken = replace(SPEC, objectives=(SPEC.objectives[0], SPEC.objectives[0]))
    with pytest.raises(ValueError, match="unique"):
        spec._check(broken)


# ------------------------------------------------------------------------------ the rules


def test_promtool_checks_the_rules():
    assert "SUCCESS" in run_tool("promtool", "check", "rules", "slo-rules.yml")


def test_promtool_unit_tests():
    """A 20 % burst pages at its first scrape and clears 35 s after; refusals spend nothing;
    a latency incident pages; the database down pages reads and money movements; an idle API
    has no SLI (slo-rules.test.yml)."""
    run_tool("promtool", "test", "rules", "slo-rules.test.yml")


@pytest.mark.slow
def test_promtool_unit_tests_over_hours():
    """Half the allowed errors for a whole 11h12m period: no page, no ticket, half the budget
    left; twice the allowed errors or slow requests: a ticket within the 1h12m window, never a
    page (slo-rules.long.test.yml, about three minutes)."""
    run_tool("promtool", "test", "rules", "slo-rules.long.test.yml")


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=ErrorBudgetFastBurn", "severity=critical", "slo=reads"], "page"),
    (["alertname=BankApiDown", "severity=critical"], "page"),
    (["alertname=ErrorBudgetSlowBurn", "severity=warning", "slo=reads"], "ticket"),
    (["alertname=DatabaseErrors", "severity=warning"], "ticket"),
])
def test_pages_and_tickets_go_to_their_receivers(labels: list[str], receiver: str):
    routed = run_tool("amtool", "config", "routes", "test",
                      "--config.file=alertmanager.yml", *labels)
    assert routed.split() == [receiver]


def test_a_page_mutes_its_own_ticket_only():
    config = yaml.safe_load((REPO / "alertmanager.yml").read_text(encoding="utf-8"))
    rule = next(r for r in config["inhibit_rules"]
                if r["source_matchers"] == ['alertname="ErrorBudgetFastBurn"']
                and r["target_matchers"] == ['alertname="ErrorBudgetSlowBurn"'])
    assert set(rule["equal"]) == {"job", "slo"}
