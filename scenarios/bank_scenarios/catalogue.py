"""The scenario catalogue: scenarios/catalogue/<name>.toml, the answer key apart in
scenarios/answers/<name>.toml. Read and checked here; nothing else parses those files.

Standard library only (tomllib): the compose stack runs this package in the API's image,
where only this folder is mounted.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOME = Path(__file__).resolve().parent.parent  # scenarios/
CATALOGUE = HOME / "catalogue"
ANSWERS = HOME / "answers"

# What a fault may be, and what each kind must say. Nothing else can be run: a scenario
# names one of these mechanisms with its parameters, never SQL or a URL of its own.
FAULT_KINDS = {
    "fault_switch": {"error_rate", "latency_ms", "routes", "methods"},
    "table_lock": {"table", "mode"},
    "missing_index": {"index"},
    "connections_refused": set(),
    "load_spike": {"users", "spawn_rate"},
    "ledger_import": {"accounts", "entries_per_account", "concurrency"},
}
LOCK_MODES = ("ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
              "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE")
SIGNAL_KINDS = ("alert", "span", "log", "metric", "exemplar")
NAME = re.compile(r"^[a-z][a-z0-9-]{1,40}$")
# The longest a fault may last at speed 1: a forgotten class still gets its database back.
MAX_FAULT_SECONDS = 15 * 60


class CatalogueError(ValueError):
    """A scenario file that cannot be run, with the file and the reason."""


def seconds(text: str | int | float) -> float:
    """'90s', '5m', '1m30s', 90 -> seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(text).strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (examples: 90s, 5m, 1m30s)")
    minutes, secs = (int(g or 0) for g in match.groups())
    return float(minutes * 60 + secs)


@dataclass(frozen=True)
class Fault:
    name: str  # what the class sees as the phase: "ledger locked"
    kind: str
    start: float  # seconds after the scenario starts, at speed 1
    stop: float  # the deadline: undone by then, whatever happens to the runner
    summary: str  # one line: what is done to the system
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Signal:
    kind: str
    what: str  # one line a student can look for
    fault: str  # the fault it follows (its name)
    within: float | None = None  # seconds after the fault starts (not scaled by speed)
    resolves_within: float | None = None  # alerts: seconds after the fault ends
    match: dict[str, Any] = field(default_factory=dict)  # kind-specific, see signals.py
    where: str = ""  # where to look: dashboard > panel, Explore query, ...


@dataclass(frozen=True)
class Answer:
    summary: str
    answers: tuple[str, ...]  # one per question, in order


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    story: str
    duration: float  # seconds at speed 1
    users: int
    spawn_rate: float
    faults: tuple[Fault, ...]
    signals: tuple[Signal, ...]
    questions: tuple[str, ...]
    watch: tuple[str, ...]  # what to open first, in order
    runbooks: tuple[str, ...]

    def fault(self, name: str) -> Fault:
        return next(f for f in self.faults if f.name == name)

    def load_steps(self, speed: float) -> list[dict[str, float]]:
        """The users over time (at: seconds after the start, already divided by speed)."""
        steps = [{"at": 0.0, "users": self.users, "spawn_rate": self.spawn_rate}]
        for fault in self.faults:
            if fault.kind == "load_spike":
                steps.append({"at": fault.start / speed, "users": fault.params["users"],
                              "spawn_rate": float(fault.params["spawn_rate"])})
                steps.append({"at": fault.stop / speed, "users": self.users,
                              "spawn_rate": float(fault.params["spawn_rate"])})
        return sorted(steps, key=lambda step: step["at"])

    def phases(self, speed: float) -> list[tuple[str, float, float]]:
        """(name, start, end) in seconds after the start at this speed: "baseline", each
        fault (overlapping faults share a phase named by both), "recovery"."""
        cuts = sorted({0.0, self.duration, *(f.start for f in self.faults),
                       *(f.stop for f in self.faults)})
        phases: list[tuple[str, float, float]] = []
        for start, end in zip(cuts, cuts[1:], strict=False):
            active = [f.name for f in self.faults if f.start <= start < f.stop]
            if active:
                name = " + ".join(active)
            else:
                name = "baseline" if start < self.faults[0].start else "recovery"
            if phases and phases[-1][0] == name:
                phases[-1] = (name, phases[-1][1], end / speed)
            else:
                phases.append((name, start / speed, end / speed))
        return phases

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "story": self.story,
                "duration": self.duration}

    def describe(self) -> dict[str, Any]:
        """Everything a student may see (no answers)."""
        return {**self.summary(), "users": self.users, "spawn_rate": self.spawn_rate,
                "faults": [{"name": f.name, "kind": f.kind, "start": f.start, "stop": f.stop,
                            "summary": f.summary, **f.params} for f in self.faults],
                "signals": [{"kind": s.kind, "what": s.what, "fault": s.fault,
                             "within": s.within, "resolves_within": s.resolves_within,
                             "where": s.where, **s.match} for s in self.signals],
                "watch": list(self.watch), "questions": list(self.questions),
                "runbooks": list(self.runbooks)}


def _take(data: dict, key: str, kind: type | tuple[type, ...], where: str, default: Any = ...):
    if key not in data:
        if default is ...:
            raise CatalogueError(f"{where}: `{key}` is missing")
        return default
    value = data.pop(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CatalogueError(f"{where}: `{key}` must be {kind}, not {value!r}")
    return value


def _fault(data: dict, where: str) -> Fault:
    name = _take(data, "name", str, where)
    kind = _take(data, "kind", str, where)
    where = f"{where} fault {name!r}"
    if kind not in FAULT_KINDS:
        raise CatalogueError(f"{where}: kind {kind!r} is not one of {sorted(FAULT_KINDS)}")
    start = seconds(_take(data, "start", (str, int), where))
    stop = seconds(_take(data, "stop", (str, int), where))
    if not 0 < stop - start <= MAX_FAULT_SECONDS:
        raise CatalogueError(f"{where}: must stop after it starts, within "
                             f"{MAX_FAULT_SECONDS // 60} min")
    summary = _take(data, "summary", str, where)
    unknown = set(data) - FAULT_KINDS[kind]
    if unknown:
        raise CatalogueError(f"{where}: {kind} takes {sorted(FAULT_KINDS[kind])}, "
                             f"not {sorted(unknown)}")
    if kind == "table_lock" and data.get("mode") not in LOCK_MODES:
        raise CatalogueError(f"{where}: mode must be one of {LOCK_MODES}")
    if kind == "load_spike" and not isinstance(data.get("users"), int):
        raise CatalogueError(f"{where}: users must be a whole number")
    return Fault(name, kind, start, stop, summary, dict(data))


def _signal(data: dict, where: str, faults: tuple[Fault, ...]) -> Signal:
    kind = _take(data, "kind", str, where)
    if kind not in SIGNAL_KINDS:
        raise CatalogueError(f"{where}: signal kind {kind!r} is not one of {SIGNAL_KINDS}")
    what = _take(data, "what", str, where)
    fault = _take(data, "fault", str, where, faults[0].name)
    if fault not in {f.name for f in faults}:
        raise CatalogueError(f"{where}: signal {what!r} follows no fault named {fault!r}")
    within = _take(data, "within", (str, int), where, None)
    resolves = _take(data, "resolves_within", (str, int), where, None)
    where_to_look = _take(data, "where", str, where, "")
    if kind == "alert" and (within is None or "alert" not in data):
        raise CatalogueError(f"{where}: an alert signal needs `alert` and `within`")
    return Signal(kind, what, fault, seconds(within) if within is not None else None,
                  seconds(resolves) if resolves is not None else None, dict(data),
                  where_to_look)


def parse(text: str, name: str, source: str = "<text>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{source}: not TOML: {exc}") from None
    if data.pop("name", name) != name or not NAME.match(name):
        raise CatalogueError(f"{source}: the file name is the scenario's name, "
                             "lower case letters, digits and dashes")
    load = _take(data, "load", dict, source)
    faults = tuple(_fault(dict(f), source) for f in _take(data, "faults", list, source))
    if not faults:
        raise CatalogueError(f"{source}: a scenario needs at least one fault")
    duration = seconds(_take(data, "duration", (str, int), source))
    if max(f.stop for f in faults) >= duration:
        raise CatalogueError(f"{source}: every fault must stop before the scenario ends "
                             "(leave time to watch the recovery)")
    scenario = Scenario(
        name=name,
        title=_take(data, "title", str, source),
        story=_take(data, "story", str, source).strip(),
        duration=duration,
        users=_take(load, "users", int, source),
        spawn_rate=float(_take(load, "spawn_rate", (int, float), source)),
        faults=faults,
        signals=tuple(_signal(dict(s), source, faults)
                      for s in _take(data, "signals", list, source)),
        questions=tuple(_take(data, "questions", list, source)),
        watch=tuple(_take(data, "watch", list, source, [])),
        runbooks=tuple(_take(data, "runbooks", list, source, [])),
    )
    if data or load:
        raise CatalogueError(f"{source}: unknown keys {sorted(data) + sorted(load)}")
    return scenario


def load(name: str, directory: Path = CATALOGUE) -> Scenario:
    path = directory / f"{name}.toml"
    if not NAME.match(name) or not path.is_file():
        raise KeyError(name)
    return parse(path.read_text(encoding="utf-8"), name, str(path))


def names(directory: Path = CATALOGUE) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.toml"))


def load_all(directory: Path = CATALOGUE) -> dict[str, Scenario]:
    return {name: load(name, directory) for name in names(directory)}


def answer(scenario: Scenario, directory: Path = ANSWERS) -> Answer:
    """The answer key: kept in its own folder so a teacher can leave it out of a class copy."""
    path = directory / f"{scenario.name}.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    answers = tuple(data.get("answers", []))
    if len(answers) != len(scenario.questions):
        raise CatalogueError(f"{path}: {len(answers)} answers for "
                             f"{len(scenario.questions)} questions")
    return Answer(str(data.get("summary", "")).strip(), answers)
