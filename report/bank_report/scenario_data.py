"""The scenario a load run played, when its folder holds scenario.json (written beside run.json
by `python -m bank_scenarios run NAME`): its story, its phases and faults in time, the signals
it expected and whether each was seen.

Every field may be missing (a file written by an older version has fewer): the report shows
what is there. A field of the wrong type, or a file that is not JSON, is an error that names
the file and the field: the report would otherwise say something false about the run.
All times in the file are unix seconds; the report shows them as seconds since the load run
started, the charts' x axis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FILE = "scenario.json"


class ScenarioFileError(ValueError):
    """scenario.json is there but cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class Window:
    """A phase, or a fault while it was applied: unix seconds, None when not recorded."""

    name: str
    start: float | None
    end: float | None
    kind: str = ""  # faults only: table_lock, fault_switch, ...
    summary: str = ""  # faults only: what was done, in a few words


@dataclass(frozen=True)
class Signal:
    """Something the scenario expected to see (an alert, a slow span, a log line, a metric)."""

    kind: str
    what: str
    bound_s: float | None  # declared: at most this long after the fault started
    seen: bool | None
    seen_at: float | None
    after_s: float | None  # seen this long after the fault started
    resolved_at: float | None  # alerts: when it resolved
    resolved_after_s: float | None  # alerts: this long after the fault ended
    detail: str
    # Written by newer versions, beside the fields above:
    fault: str = ""  # the fault it follows
    resolve_bound_s: float | None = None  # alerts: resolved at most this long after its end
    checked: bool | None = None  # False: nothing to check it against where the run was
    passed: bool | None = None  # its own verdict, bounds included

    @property
    def status(self) -> str:
        """One of STATUSES."""
        if self.checked is False:
            return "not checked"
        if self.seen is None:
            return "unknown"
        if not self.seen:
            return "missing"
        if self.bound_s is not None and self.after_s is not None and self.after_s > self.bound_s:
            return "late"
        if self.passed is False:  # seen in time: its resolution was not
            return "resolved late" if self.resolve_bound_s is not None else "late"
        return "seen"


# A signal's status -> what the report says of it, and whether that counts against the run.
STATUSES = {"seen": ("yes", "pass"), "late": ("yes, late", "fail"),
            "resolved late": ("yes, resolved late", "fail"), "missing": ("no", "fail"),
            "not checked": ("not checked", "warn"), "unknown": ("unknown", "warn")}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    story: str
    speed: float | None
    started_at: float | None
    ended_at: float | None
    outcome: str  # finished | stopped | failed; "" when not recorded
    passed: bool | None
    phases: list[Window]
    faults: list[Window]
    signals: list[Signal]


class _Reader:
    """Typed access to the file's fields; a wrong type raises, naming the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, wanted: str, value: object) -> ScenarioFileError:
        return ScenarioFileError(
            f"{self.path}: {where} should be {wanted}, not {json.dumps(value)[:60]}")

    def number(self, entry: dict, key: str, where: str) -> float | None:
        value = entry.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where}{key}", "a number", value)
        return float(value)

    def text(self, entry: dict, key: str, where: str) -> str:
        value = entry.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(f"{where}{key}", "a string", value)
        return value

    def flag(self, entry: dict, key: str, where: str) -> bool | None:
        value = entry.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"{where}{key}", "true or false", value)
        return value

    def objects(self, entry: dict, key: str) -> list[tuple[str, dict]]:
        """A list of objects, each with the prefix its fields are named by in errors."""
        value = entry.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, "a list", value)
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{key}[{index}]", "an object", item)
        return [(f"{key}[{index}].", item) for index, item in enumerate(value)]

    def window(self, where: str, entry: dict) -> Window:
        return Window(self.text(entry, "name", where), self.number(entry, "start", where),
                      self.number(entry, "end", where), self.text(entry, "kind", where),
                      self.text(entry, "summary", where))

    def signal(self, where: str, entry: dict) -> Signal:
        number, text = self.number, self.text
        return Signal(
            kind=text(entry, "kind", where), what=text(entry, "what", where),
            bound_s=number(entry, "bound_s", where), seen=self.flag(entry, "seen", where),
            seen_at=number(entry, "seen_at", where), after_s=number(entry, "after_s", where),
            resolved_at=number(entry, "resolved_at", where),
            resolved_after_s=number(entry, "resolved_after_s", where),
            detail=text(entry, "detail", where), fault=text(entry, "fault", where),
            resolve_bound_s=number(entry, "resolve_bound_s", where),
            checked=self.flag(entry, "checked", where), passed=self.flag(entry, "passed", where))


def read(path: Path) -> Scenario | None:
    """The scenario of the run folder's scenario.json; None when there is none."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioFileError(f"{path}: not valid JSON ({exc})") from exc
    reader = _Reader(path)
    if not isinstance(data, dict):
        raise reader.fail("the file", "a JSON object", data)
    return Scenario(
        name=reader.text(data, "scenario", ""), title=reader.text(data, "title", ""),
        story=reader.text(data, "story", ""), speed=reader.number(data, "speed", ""),
        started_at=reader.number(data, "started_at", ""),
        ended_at=reader.number(data, "ended_at", ""),
        outcome=reader.text(data, "outcome", ""), passed=reader.flag(data, "passed", ""),
        phases=[reader.window(*item) for item in reader.objects(data, "phases")],
        faults=[reader.window(*item) for item in reader.objects(data, "faults")],
        signals=[reader.signal(*item) for item in reader.objects(data, "signals")])


def _since(at: float | None, t0: float) -> float | None:
    return None if at is None else round(at - t0, 1)


def fault_label(scenario: Scenario, fault: Window) -> str:
    """How a chart's legend names a fault: "lock-held: ledger locked"."""
    return ": ".join(part for part in (scenario.name, fault.name or fault.kind) if part) \
        or "fault"


def section(scenario: Scenario, t0: float, file: str = FILE) -> dict:
    """What the report shows of the scenario (summary.json's "scenario"); times are seconds
    since the load run started (t0)."""

    def window(w: Window) -> dict:
        seconds = None if w.start is None or w.end is None else round(w.end - w.start, 1)
        return {"name": w.name, "start_s": _since(w.start, t0), "end_s": _since(w.end, t0),
                "seconds": seconds}

    signals = [{
        "kind": s.kind, "what": s.what, "fault": s.fault, "bound_s": s.bound_s,
        "seen": s.seen, "status": s.status, "seen_at_s": _since(s.seen_at, t0),
        "after_s": s.after_s, "resolved_at_s": _since(s.resolved_at, t0),
        "resolved_after_s": s.resolved_after_s, "resolve_bound_s": s.resolve_bound_s,
        "detail": s.detail,
    } for s in scenario.signals]
    return {
        "file": file, "name": scenario.name, "title": scenario.title, "story": scenario.story,
        "speed": scenario.speed, "outcome": scenario.outcome, "passed": scenario.passed,
        "started_s": _since(scenario.started_at, t0), "ended_s": _since(scenario.ended_at, t0),
        "phases": [window(p) for p in scenario.phases],
        "faults": [window(f) | {"kind": f.kind, "summary": f.summary,
                                "label": fault_label(scenario, f)} for f in scenario.faults],
        "signals": signals,
        "signals_seen": sum(s["seen"] is True for s in signals),
    }
