"""Where the CPU went during one measurement: the server, PostgreSQL, the load generator, and
everything else on the machine.

On a machine with two cores, throughput is roughly "two cores divided by the CPU one request
costs in total", so CPU milliseconds per request, split by process group, says more than the
request rate alone: it shows which side to make cheaper. "other" is the machine's busy time
that none of the groups used: this script, and whatever else runs on a shared machine.

Processes are sampled every SAMPLE_SECONDS while the load runs, so processes that start and
end inside the measurement (pgbench's server backends) are counted up to their last sample.
"""

from __future__ import annotations

import threading
import time

import psutil

SAMPLE_SECONDS = 0.25


def _tree(root: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(root)
        return [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return []


def _busy_seconds(times) -> float:
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class CpuMeter:
    """Use as `with CpuMeter({"api": [pid], "postgres": [pid], "load": [pid]}) as meter:`;
    groups can be filled in after the start (`meter.add("load", pid)`)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = {name: list(roots) for name, roots in groups.items()}
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.result: dict = {}

    def add(self, group: str, pid: int) -> None:
        self.groups.setdefault(group, []).append(pid)

    def _sample(self, *, first: bool) -> None:
        for group, roots in list(self.groups.items()):
            for root in roots:
                for process in _tree(root):
                    try:
                        times = process.cpu_times()
                    except psutil.Error:
                        continue
                    key = (group, process.pid)
                    used = times.user + times.system
                    # A process first seen after the start began inside the measurement:
                    # all of its CPU time belongs to it.
                    self._first.setdefault(key, used if first else 0.0)
                    self._last[key] = used

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample(first=False)

    def __enter__(self) -> CpuMeter:
        self._machine = psutil.cpu_times()
        self._clock = time.monotonic()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sample(first=False)
        self._stop.set()
        self._thread.join()
        elapsed = time.monotonic() - self._clock
        machine = _busy_seconds(psutil.cpu_times()) - _busy_seconds(self._machine)
        used = {group: 0.0 for group in self.groups}
        for (group, _pid), last in self._last.items():
            used[group] += max(last - self._first[(group, _pid)], 0.0)
        used["other"] = max(machine - sum(used.values()), 0.0)
        self.result = {
            "wall_seconds": round(elapsed, 3),
            "machine_busy_seconds": round(machine, 3),
            "machine_busy_share": round(machine / (elapsed * psutil.cpu_count()), 3),
            "cpu_seconds": {group: round(seconds, 3) for group, seconds in used.items()},
        }

    def per_request_ms(self, requests: int) -> dict[str, float]:
        if not requests:
            return {}
        return {group: round(seconds * 1000 / requests, 3)
                for group, seconds in self.result["cpu_seconds"].items()}
