"""One scenario run at a time: each fault started at its time, held to its deadline, undone;
the run's state for the service's answers and its metrics.

Each fault holds in a thread of its own (mechanisms.py: the hold returns at the deadline,
the fault undone). Stopping a run stops every fault now. Times are wall-clock (unix
seconds): they are compared with Prometheus', Alertmanager's and the logs' timestamps.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bank_scenarios import mechanisms
from bank_scenarios.catalogue import Fault, Scenario

log = logging.getLogger("bank_scenarios")


@dataclass
class FaultRun:
    fault: Fault
    start: float  # unix seconds
    end: float
    state: str = "pending"  # pending, active, undone, failed
    error: str | None = None
    applied: mechanisms.Applied | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.fault.name, "kind": self.fault.kind, "start": self.start,
                "end": self.end, "state": self.state, "summary": self.fault.summary,
                **({"error": self.error} if self.error else {})}


@dataclass
class Run:
    scenario: Scenario
    speed: float
    started_at: float
    faults: list[FaultRun] = field(default_factory=list)
    state: str = "running"  # running, finished, stopped, failed
    ended_at: float | None = None

    @property
    def id(self) -> str:
        return f"{self.scenario.name}-{int(self.started_at)}"

    @property
    def ends_at(self) -> float:
        return self.started_at + self.scenario.duration / self.speed

    def phases(self) -> list[dict[str, Any]]:
        return [{"name": name, "start": self.started_at + start, "end": self.started_at + end}
                for name, start, end in self.scenario.phases(self.speed)]

    def phase(self, now: float | None = None) -> str | None:
        """The current phase's name; None once the run is over."""
        if self.state != "running":
            return None
        now = time.time() if now is None else now
        return next((p["name"] for p in self.phases() if p["start"] <= now < p["end"]),
                    "recovery")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "scenario": self.scenario.name, "title": self.scenario.title,
                "speed": self.speed, "started_at": self.started_at, "ends_at": self.ends_at,
                "ended_at": self.ended_at, "state": self.state, "phase": self.phase(),
                "load": {"users": self.scenario.users, "spawn_rate": self.scenario.spawn_rate,
                         "steps": self.scenario.load_steps(self.speed)},
                "phases": self.phases(), "faults": [f.to_json() for f in self.faults]}


class Busy(Exception):
    """Another scenario is running."""


class Conductor:
    def __init__(self, targets: mechanisms.Targets) -> None:
        self.targets = targets
        self.current: Run | None = None
        self.outcomes: dict[tuple[str, str], int] = {}  # (scenario, outcome) -> runs
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, scenario: Scenario, speed: float) -> Run:
        with self._lock:
            if self.current is not None and self.current.state == "running":
                raise Busy(self.current.scenario.name)
            for done in self.targets.heal():
                log.warning("before %s: %s", scenario.name, done)
            now = time.time()
            run = Run(scenario, speed, now, [
                FaultRun(f, now + f.start / speed, now + f.stop / speed)
                for f in scenario.faults])
            self.current, self._stop = run, threading.Event()
            self._threads = [threading.Thread(target=self._hold, args=(run, fault_run),
                                              name=f"fault {fault_run.fault.name}", daemon=True)
                             for fault_run in run.faults]
            self._threads.append(threading.Thread(target=self._finish, args=(run,),
                                                  name="run end", daemon=True))
            for thread in self._threads:
                thread.start()
            log.warning("scenario %s started (speed %s): %s", scenario.name, speed,
                        scenario.title)
            return run

    def stop(self, outcome: str = "stopped") -> Run | None:
        """Undo every fault of the running scenario now; the run, or None if none runs."""
        with self._lock:
            run = self.current
            if run is None or run.state != "running":
                return None
            run.state = outcome
            self._stop.set()
            for fault_run in run.faults:
                if fault_run.applied is not None:
                    try:
                        fault_run.applied.stop()
                    except Exception as exc:  # the deadline still undoes it
                        log.error("stopping %s: %s", fault_run.fault.name, exc)
        for thread in self._threads:
            thread.join(timeout=30)
        self._end(run, outcome)
        return run

    def _hold(self, run: Run, fault_run: FaultRun) -> None:
        if self._stop.wait(max(0.0, fault_run.start - time.time())):
            fault_run.state = "undone"
            return
        fault = fault_run.fault
        try:
            fault_run.applied = mechanisms.applied(self.targets, run.scenario.name, fault,
                                                   fault_run.end - time.time())
            fault_run.state = "active"
            log.warning("%s: %s (%s) until its deadline", run.scenario.name, fault.name,
                        fault.summary)
            fault_run.applied.hold()
            fault_run.state = "undone"
            log.warning("%s: %s undone", run.scenario.name, fault.name)
        except Exception as exc:
            fault_run.state, fault_run.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("%s: %s failed: %s", run.scenario.name, fault.name, fault_run.error)

    def _finish(self, run: Run) -> None:
        if self._stop.wait(max(0.0, run.ends_at - time.time())):
            return
        with self._lock:
            if run.state != "running":
                return
            run.state = "failed" if any(f.state == "failed" for f in run.faults) else "finished"
        self._end(run, run.state)

    def _end(self, run: Run, outcome: str) -> None:
        run.ended_at = run.ended_at or time.time()
        key = (run.scenario.name, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        log.warning("scenario %s %s", run.scenario.name, outcome)
