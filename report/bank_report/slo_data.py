"""The service level objectives over the run: slos.yml, read through bankops.slo (the one place
they are written, the same code that writes the recording rules), and what Prometheus says of
each one over the run's window.

Per objective, queried at the run's end:
- its error ratio over exactly the run: bankops.slo.rules.sli_error for a window of the run's
  length, the very selectors of the slo:sli_error:ratio_rate<window> rules (availability: the
  share of 5xx answers; latency: the share slower than its threshold);
- the error budget left at the end: slo:period_error_budget_remaining:ratio as of the end
  itself, its recording rule's own expression (as Prometheus has it loaded: docs/slos.md says
  how it counts) evaluated at that instant. The recorded series would do, but its group runs
  every 30 s: at the end of a short run it can date from before the run's first bad request;
- its burn rate over the run, one point per 5 s, for the chart: slo:burn_rate:rate<window> at
  the shortest long window a burn-rate alert watches (1m in the demo: production's 1h).
The numbers derived from them (SLI, burn rate, budget spent) are properties below; the
burn-rate alerts come from prometheus_data's ALERTS query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bank_report.prometheus_data import LenientQueries, Prometheus, Series, _series
from bankops.slo.rules import BUDGET_LEFT, burn_rate_name, sli_error
from bankops.slo.spec import BurnAlert, Objective, Spec, WindowPair, duration

# Every objective the loaded rules know, with its value: are slo-rules.yml loaded, and are they
# those of slos.yml?
RULES_OBJECTIVES = "slo:objective:ratio"


@dataclass
class ObjectiveOverRun:
    objective: Objective
    run_seconds: int
    period_seconds: int  # the demo's compliance period
    error_ratio: float | None = None  # over the run; None: no request of its routes
    budget_left: float | None = None  # at the end; None: rule not loaded, or nothing to count
    queries: dict[str, str] = field(default_factory=dict)  # number -> PromQL

    @property
    def sli(self) -> float | None:
        return None if self.error_ratio is None else 1 - self.error_ratio

    @property
    def met(self) -> bool | None:
        return None if self.sli is None else self.sli >= self.objective.objective

    @property
    def burn_rate(self) -> float | None:
        """How many times faster than allowed the run spent the budget (1: exactly as fast as
        the objective allows over a whole period)."""
        return None if self.error_ratio is None else self.error_ratio / self.objective.budget

    @property
    def budget_spent(self) -> float | None:
        """The run's bad requests as a share of the bad requests a whole compliance period at
        the run's request rate may have: burn rate x run length / period."""
        if self.burn_rate is None:
            return None
        return self.burn_rate * self.run_seconds / self.period_seconds


@dataclass
class SloData:
    spec: Spec
    run_seconds: int
    objectives: list[ObjectiveOverRun]
    chart_alert: BurnAlert
    chart_pair: WindowPair
    rules_objectives: dict[str, float] = field(default_factory=dict)  # slo -> objective
    burn_rate: list[Series] = field(default_factory=list)  # one per objective, label slo
    query_errors: dict[str, str] = field(default_factory=dict)  # PromQL -> error

    @property
    def chart_window(self) -> str:
        return duration(self.spec.demo(self.chart_pair.long))


def chart_pair(spec: Spec) -> tuple[BurnAlert, WindowPair]:
    """The alert's window pair with the shortest long window: the burn rate the fastest page
    watches (ErrorBudgetFastBurn's 1h, 1m in the demo, above 14.4)."""
    return min(((a, p) for a in spec.alerts for p in a.windows), key=lambda ap: ap[1].long)


def _value(results: list[dict]) -> float | None:
    """An instant query's one value (None: no result)."""
    return float(results[0]["value"][1]) if results else None


def _over_run(queries: LenientQueries, data: SloData, objective: Objective, end: float,
              budget_left: str | None) -> ObjectiveOverRun:
    """budget_left: the PromQL of the objective's slo:period_error_budget_remaining:ratio rule
    (None: not loaded)."""
    error_ratio = sli_error(objective, f"{data.run_seconds}s")
    return ObjectiveOverRun(
        objective, data.run_seconds, data.spec.demo_period,
        error_ratio=_value(queries.instant(error_ratio, end)),
        budget_left=_value(queries.instant(budget_left, end)) if budget_left else None,
        queries={"error_ratio": error_ratio, "budget_left": budget_left})


def collect(url: str, spec: Spec, start: float, end: float) -> SloData:
    """Every objective of spec over [start, end]; never raises for a query that fails (the
    query and its error are in query_errors, the number is None)."""
    alert, pair = chart_pair(spec)
    # Whole seconds, at least one scrape interval: a range selector needs a duration.
    data = SloData(spec, max(round(end - start), 5), [], alert, pair)
    prometheus = Prometheus(url)
    try:
        queries = LenientQueries(prometheus, data.query_errors)
        left = queries.rules(BUDGET_LEFT)
        data.objectives = [_over_run(queries, data, o, end, left.get(o.name))
                           for o in spec.objectives]
        data.rules_objectives = {r["metric"].get("slo", "?"): float(r["value"][1])
                                 for r in queries.instant(RULES_OBJECTIVES, end)}
        data.burn_rate = sorted((_series("{slo}", r) for r in
                                 queries.range(burn_rate_name(spec.demo(pair.long)), start,
                                               end)),
                                key=lambda s: s.label)
    finally:
        prometheus.close()
    return data
