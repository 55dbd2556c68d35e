"""The service's /metrics: the running scenario and its phase, read from the conductor at
each scrape (a custom collector: no series outlives the state it describes)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from bank_scenarios.conductor import Conductor


class ScenarioCollector(Collector):
    def __init__(self, conductor: Conductor) -> None:
        self.conductor = conductor

    def collect(self):
        run = self.conductor.current
        running = run is not None and run.state == "running"
        yield GaugeMetricFamily("bank_scenario_running",
                                "1 while a classroom scenario runs, else 0",
                                value=1 if running else 0)
        phase = GaugeMetricFamily("bank_scenario_phase",
                                  "1 for the running scenario's current phase",
                                  labels=["scenario", "phase"])
        faults = GaugeMetricFamily("bank_scenario_fault_active",
                                   "1 while a scenario's fault is applied",
                                   labels=["scenario", "fault", "kind"])
        if running:
            phase.add_metric([run.scenario.name, run.phase() or "recovery"], 1)
            for fault_run in run.faults:
                if fault_run.state == "active":
                    faults.add_metric([run.scenario.name, fault_run.fault.name,
                                       fault_run.fault.kind], 1)
        yield phase
        yield faults
        runs = CounterMetricFamily("bank_scenario_runs", "Scenario runs ended, by outcome",
                                   labels=["scenario", "outcome"])
        for (scenario, outcome), count in sorted(self.conductor.outcomes.items()):
            runs.add_metric([scenario, outcome], count)
        yield runs


def registry(conductor: Conductor) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScenarioCollector(conductor))
    return registry
