"""slo-rules.yml from the spec: per objective, the SLI's error ratio and burn rate at every
window the alerts use, the budget left over the period, and the burn-rate alerts.

Names follow Prometheus's level:metric:operations convention and Sloth's SLO rules:
  slo:sli_error:ratio_rate<window>         share of bad requests over the window
  slo:burn_rate:rate<window>               that share / the share allowed (1 = on budget)
  slo:period_error_budget_remaining:ratio  1 - the share of the period's budget spent
  slo:objective:ratio, slo:error_budget:ratio
each with the label slo="<name>" (and job, from the request metrics).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from bankops.slo.spec import REPO, BurnAlert, Objective, Route, Spec, duration

RULES = REPO / "slo-rules.yml"
JOB = "bank-api"
# The period's rules read up to the whole period of samples: every 30 s is often enough for
# a budget that moves slowly, and keeps them cheap.
PERIOD_INTERVAL = "30s"
# prometheus.yml's evaluation_interval: the spacing of the samples the budget integrates.
EVALUATION_SECONDS = 5
HEADER = """\
# Generated from slos.yml by `python -m bankops.slo`: edit slos.yml, then run it again.
# A test fails when this file differs from what slos.yml generates. docs/slos.md explains it.
"""


def sli_error_name(window: int) -> str:
    """The recorded error ratio over a window (seconds): slo:sli_error:ratio_rate1m."""
    return f"slo:sli_error:ratio_rate{duration(window)}"


def burn_rate_name(window: int) -> str:
    """The recorded burn rate over a window (seconds): slo:burn_rate:rate1m."""
    return f"slo:burn_rate:rate{duration(window)}"


BUDGET_LEFT = "slo:period_error_budget_remaining:ratio"


def _selector(metric: str, route: Route, extra: str = "") -> str:
    return (f'{metric}{{job="{JOB}", method="{route.method}", '
            f'handler="{route.handler}"{extra}}}')


def _sum(metric: str, routes: tuple[Route, ...], window: str, extra: str = "") -> str:
    """The per-second rate summed over the routes (one `or` per route: each route is its
    own method and handler, so no regex can catch a combination the objective leaves out)."""
    rates = "\n    or\n  ".join(f"rate({_selector(metric, r, extra)}[{window}])" for r in routes)
    return f"sum by (job) (\n  {rates}\n)"


def sli_error(objective: Objective, window: str) -> str:
    """The share of bad requests over the window, or nothing when there was no request."""
    if objective.sli == "availability":
        total = _sum("http_requests_total", objective.routes, window)
        errors = _sum("http_requests_total", objective.routes, window, ', status=~"5.."')
        # `or 0 * total`: no 5xx series at all yet means no error, not no data.
        return f"(\n{_indent(errors)}\n  or\n{_indent('0 * ' + total)}\n)\n/\n({total} > 0)"
    total = _sum("http_request_duration_seconds_count", objective.routes, window)
    fast = _sum("http_request_duration_seconds_bucket", objective.routes, window,
                f', le="{objective.threshold_seconds}"')
    return f"(\n{_indent(total)}\n  -\n{_indent(fast)}\n)\n/\n({total} > 0)"


def _indent(expr: str) -> str:
    return textwrap.indent(expr, "  ")


def _name(objective: Objective) -> str:
    return f'{{slo="{objective.name}"}}'


def _record(name: str, expr: str, objective: Objective) -> dict:
    return {"record": name, "expr": expr, "labels": {"slo": objective.name}}


def _query(expr: str, fmt: str) -> str:
    """An alert template's value of a query, formatted ("" when it has none)."""
    return f'{{{{ with query "{expr}" }}}}{{{{ . | first | value | {fmt} }}}}{{{{ end }}}}'


def _burn(window: int, objective: Objective) -> str:
    return _query(f"{burn_rate_name(window)}{{slo='{objective.name}'}}", 'printf "%.1f"')


def alert_rule(spec: Spec, alert: BurnAlert, objective: Objective) -> dict:
    pairs = []
    conditions = []
    for pair in alert.windows:
        long, short = spec.demo(pair.long), spec.demo(pair.short)
        rate = f"{pair.burn_rate:g}"
        conditions.append(
            f"(\n  {burn_rate_name(long)}{_name(objective)} > {rate}\n  and\n"
            f"  {burn_rate_name(short)}{_name(objective)} > {rate}\n)")
        pairs.append(f"{rate}x over {duration(long)} and {duration(short)} (production: "
                     f"{duration(pair.long)} and {duration(pair.short)})")
    first = spec.demo(alert.windows[0].long)
    windows = sorted({spec.demo(w) for p in alert.windows for w in (p.long, p.short)})
    burns = ", ".join(f"{_burn(w, objective)}x over {duration(w)}" for w in windows)
    errors = _query(f"{sli_error_name(first)}{{slo='{objective.name}'}}", "humanizePercentage")
    left = _query(f"{BUDGET_LEFT}{{slo='{objective.name}'}}", "humanizePercentage")
    pages = "pages" if alert.severity == "critical" else "opens a ticket"
    # One fact per line: Alertmanager and Grafana show the line breaks.
    description = "\n".join([
        f"{objective.title}: the objective is {objective.objective:.1%} of requests over "
        f"{duration(spec.period)} ({duration(spec.demo_period)} in the demo): "
        f"{objective.budget:.2%} may be bad.",
        f"Burn rate now: {burns}.",
        f"Bad requests over the last {duration(first)}: {errors}.",
        f"Error budget left for the period: {left}.",
        f"This alert {pages} at {' or '.join(pairs)}."])
    return {
        "alert": alert.alert,
        "expr": "\nor\n".join(conditions),
        # slo is on the series already; here too, so that two objectives' rules differ.
        "labels": {"severity": alert.severity, "slo": objective.name},
        "annotations": {
            "summary": (f"{objective.title} ({objective.name}): the error budget burns "
                        '{{ $value | printf "%.1f" }}x too fast'),
            "description": description,
            "runbook_url": f"docs/runbooks/{alert.alert}.md#{objective.name}",
        },
    }


def objective_groups(spec: Spec, objective: Objective) -> list[dict]:
    rules = [_record(sli_error_name(w), sli_error(objective, duration(w)), objective)
             for w in spec.windows()]
    rules += [_record(burn_rate_name(w),
                      f"{sli_error_name(w)}{_name(objective)} / {objective.budget:g}", objective)
              for w in spec.windows()]
    # After the recording rules in the same group: evaluated in order, at the same instant,
    # an alert sees the burn rates of this very evaluation.
    rules += [alert_rule(spec, alert, objective) for alert in spec.alerts]
    period = duration(spec.demo_period)
    return [
        {"name": f"slo-{objective.name}", "rules": rules},
        {"name": f"slo-{objective.name}-period", "interval": PERIOD_INTERVAL, "rules": [
            # The SLI over the period: the share of bad requests among those served.
            _record(sli_error_name(spec.demo_period), sli_error(objective, period), objective),
            # The budget in time: the period allows `budget` of its length as if completely
            # down. What was spent is the bad share integrated over time (the shortest window's
            # ratio, one sample per evaluation). Time the stack did not run, or served nobody,
            # spent nothing: a fresh stack starts with its whole budget, and an incident eats
            # into it at the pace of the period, not of the minutes served so far.
            _record(BUDGET_LEFT,
                    f"1 - sum_over_time({sli_error_name(spec.windows()[0])}{_name(objective)}"
                    f"[{period}]) * {EVALUATION_SECONDS} / ({objective.budget:g} * "
                    f"{spec.demo_period})", objective),
            _record("slo:objective:ratio", f"vector({objective.objective:g})", objective),
            _record("slo:error_budget:ratio", f"vector({objective.budget:g})", objective),
        ]},
    ]


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(spec: Spec) -> str:
    groups = [g for objective in spec.objectives for g in objective_groups(spec, objective)]
    body = yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=4096,
                     allow_unicode=True)
    return HEADER + body


def write(spec: Spec, path: Path = RULES) -> Path:
    path.write_text(render(spec), encoding="utf-8")
    return path
