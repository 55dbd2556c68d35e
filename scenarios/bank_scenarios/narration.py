"""The live narration of a run in the terminal: what happens now, what to open.

    [  20s] ── ledger locked: another session holds a SHARE lock on ledger_entries ...
            open: Service level objectives: the money-movements and latency rows
    [  35s] ALERT ErrorBudgetFastBurn{slo="money-movements"} at Alertmanager, 15 s after
            "ledger locked" began (declared: within 60 s)
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from bank_scenarios.catalogue import Scenario
from bank_scenarios.polling import Poller
from bank_scenarios.signals import Seen, alert_label, get_json


class Narrator(Poller):
    def __init__(self, scenario: Scenario, service_url: str, out: TextIO = sys.stdout) -> None:
        super().__init__("narration")
        self.scenario, self.service_url, self.out = scenario, service_url.rstrip("/"), out
        self.run: dict | None = None  # the service's last answer about the run
        self.started_at: float | None = None
        self._phase: str | None = None
        self._announced: set[str] = set()  # faults whose start was said
        self._lock = threading.Lock()

    def say(self, text: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        offset = f"{at - self.started_at:5.0f}s" if self.started_at else "    - "
        with self._lock:
            print(f"[{offset}] {text}", file=self.out, flush=True)

    def start(self) -> Narrator:
        self.say(f"{self.scenario.name}: {self.scenario.title}")
        for line in self.scenario.story.splitlines():
            self.say(f"  {line}")
        return super().start()

    def poll(self) -> None:
        try:
            run = get_json(f"{self.service_url}/runs/current", timeout=3)
        except OSError:
            return
        if run.get("scenario") == self.scenario.name and (
                self.run is not None or run["state"] == "running"):
            self._follow(run)

    def _follow(self, run: dict) -> None:
        if self.started_at is None:
            self.started_at = run["started_at"]
            self.say(f"started at speed {run['speed']:g}; ends in "
                     f"{run['ends_at'] - run['started_at']:.0f} s")
        self.run = run
        phase = run["phase"] if run["state"] == "running" else f"over ({run['state']})"
        if phase == self._phase:
            return
        self._phase = phase
        starting = [f for f in run["faults"] if f["name"] in phase.split(" + ")
                    and f["name"] not in self._announced]
        if starting:
            for fault in starting:
                self._announced.add(fault["name"])
                self.say(f"── {fault['name']}: {fault['summary']}")
                self.say(f"   undone by itself at +{fault['end'] - run['started_at']:.0f}s")
        elif phase == "baseline":
            self.say("── baseline: the usual day. Open the dashboards now, see what normal looks "
                     "like")
            for hint in self.scenario.watch:
                self.say(f"   open: {hint}")
        elif phase == "recovery":
            self.say("── recovery: every fault undone. Watch the alerts resolve")
        else:  # one fault ended, another goes on; or the run is over
            self.say(f"── {phase}")

    def on_alert(self) -> Callable[[Seen, str], None]:
        """What AlertWatch calls when an expected alert arrives or leaves."""

        def changed(seen: Seen, state: str) -> None:
            fault = self._fault_times(seen.signal.fault)
            label = alert_label(seen.signal)
            if fault is None:
                self.say(f"ALERT {label} {state}")
            elif state == "firing":
                self.say(f"ALERT {label} at Alertmanager, {seen.seen_at - fault[0]:.0f} s after "
                         f"\"{seen.signal.fault}\" began (declared: within "
                         f"{seen.signal.within:.0f} s) -- {seen.detail}")
            else:
                self.say(f"resolved: {label}, {seen.resolved_at - fault[1]:.0f} s after "
                         f"\"{seen.signal.fault}\" ended")

        return changed

    def _fault_times(self, name: str) -> tuple[float, float] | None:
        if self.run is None:
            return None
        fault = next((f for f in self.run["faults"] if f["name"] == name), None)
        return (fault["start"], fault["end"]) if fault else None
