"""slos.yml, read and checked: the objectives, the period and the workbook's burn-rate table,
and the time scale that turns production windows into the demo's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "slos.yml"

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+)([dhms])")
SLI_KINDS = ("availability", "latency")
SEVERITIES = ("critical", "warning")


def seconds(duration: str) -> int:
    """A Prometheus duration such as 1h12m or 28d, in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def duration(total: int) -> str:
    """Seconds as Prometheus writes a duration: 4320 -> 1h12m, 30 -> 30s."""
    out = ""
    for unit, size in _UNITS.items():
        if unit == "d" and total % size:
            continue  # 36h, not 1d12h: days only when whole
        count, total = divmod(total, size)
        if count:
            out += f"{count}{unit}"
    return out or "0s"


@dataclass(frozen=True)
class Route:
    method: str
    handler: str

    @classmethod
    def parse(cls, text: str) -> Route:
        method, _, handler = text.partition(" ")
        if not method.isupper() or not handler.startswith("/"):
            raise ValueError(f"a route is 'METHOD /template': {text!r}")
        return cls(method, handler)

    def __str__(self) -> str:
        return f"{self.method} {self.handler}"


@dataclass(frozen=True)
class Objective:
    name: str
    title: str
    description: str
    objective: float  # the share of good requests promised, e.g. 0.999
    sli: str  # availability | latency
    routes: tuple[Route, ...]
    threshold_seconds: float | None = None  # latency only: a bucket bound

    @property
    def budget(self) -> float:
        """The share of requests allowed to be bad."""
        return round(1 - self.objective, 10)


@dataclass(frozen=True)
class WindowPair:
    long: int  # production seconds
    short: int
    burn_rate: float


@dataclass(frozen=True)
class BurnAlert:
    alert: str
    severity: str
    windows: tuple[WindowPair, ...]


@dataclass(frozen=True)
class Spec:
    period: int  # production seconds
    time_scale: int
    min_window: int
    alerts: tuple[BurnAlert, ...]
    objectives: tuple[Objective, ...]
    not_covered: dict[Route, str]

    def demo(self, production: int) -> int:
        """A production window as the demo's rules use it."""
        return max(production // self.time_scale, self.min_window)

    @property
    def demo_period(self) -> int:
        return self.demo(self.period)

    def windows(self) -> list[int]:
        """Every demo window an alert uses, shortest first (the period is apart)."""
        return sorted({self.demo(w) for a in self.alerts for p in a.windows
                       for w in (p.long, p.short)})


def load(path: Path = SPEC) -> Spec:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec = Spec(
        period=seconds(raw["period"]),
        time_scale=int(raw["time_scale"]),
        min_window=seconds(raw["min_window"]),
        alerts=tuple(
            BurnAlert(a["alert"], a["severity"], tuple(
                WindowPair(seconds(w["long"]), seconds(w["short"]), float(w["burn_rate"]))
                for w in a["windows"]))
            for a in raw["alerts"]),
        objectives=tuple(
            Objective(o["name"], o["title"], " ".join(o["description"].split()),
                      float(o["objective"]), o["sli"],
                      tuple(Route.parse(r) for r in o["routes"]),
                      o.get("threshold_seconds"))
            for o in raw["objectives"]),
        not_covered={Route.parse(r): why for r, why in raw.get("not_covered", {}).items()},
    )
    _check(spec)
    return spec


def _check(spec: Spec) -> None:
    names = [o.name for o in spec.objectives]
    if len(names) != len(set(names)) or not all(re.fullmatch(r"[a-z][a-z-]*", n) for n in names):
        raise ValueError(f"objective names must be unique, lowercase-with-dashes: {names}")
    for objective in spec.objectives:
        if not 0.9 <= objective.objective < 1:
            raise ValueError(f"{objective.name}: objective {objective.objective} not in [0.9, 1)")
        if objective.sli not in SLI_KINDS:
            raise ValueError(f"{objective.name}: sli must be one of {SLI_KINDS}")
        if (objective.sli == "latency") != (objective.threshold_seconds is not None):
            raise ValueError(f"{objective.name}: threshold_seconds is for latency SLIs only")
    for alert in spec.alerts:
        if alert.severity not in SEVERITIES:
            raise ValueError(f"{alert.alert}: severity must be one of {SEVERITIES}")
        for pair in alert.windows:
            if not pair.short < pair.long <= spec.period:
                raise ValueError(f"{alert.alert}: windows must be short < long <= period")
