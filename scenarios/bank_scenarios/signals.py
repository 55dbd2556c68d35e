"""Whether the signals a scenario declares appeared, and when.

- alert: the alert (`alert`, `labels`) at Alertmanager: first seen, gone again. Watched live
  during the run (AlertWatch), since Alertmanager keeps no history.
- span: a span in the traces the native stack keeps (logs/traces.jsonl): `name`, `route`
  (its own or its request's http.route), `statement` (a piece of its SQL), `status`
  ("error"), `status_code`, `min_duration_ms`, `slower_than_baseline` (times the median of
  the same spans in the scenario's baseline phase).
- log: a line of the API's JSON log (logs/api.log) whose fields equal `fields`, at least
  `min_duration_ms` long when given.
- metric: a PromQL `expr` that returns something; with `above_baseline`, a value that many
  times its median in the baseline phase.
- exemplar: an exemplar of `metric` (a series selector) of at least `min_value`, whose trace
  is at the trace store.

Spans, log lines and metrics count from the start of the fault the signal follows; `within`
bounds how long after it they may come.

Standard library only: it also runs in the API image.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bank_scenarios.catalogue import Scenario, Signal
from bank_scenarios.polling import Poller


def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def alert_label(signal: Signal) -> str:
    labels = ", ".join(f'{k}="{v}"' for k, v in signal.match.get("labels", {}).items())
    return f"{signal.match['alert']}{{{labels}}}" if labels else signal.match["alert"]


@dataclass
class Seen:
    """What became of one signal."""

    signal: Signal
    seen_at: float | None = None
    resolved_at: float | None = None
    detail: str = ""
    checked: bool = True  # False: no source to check it against here

    def to_json(self, fault_start: float, fault_end: float) -> dict[str, Any]:
        after = None if self.seen_at is None else round(self.seen_at - fault_start, 1)
        resolved_after = (None if self.resolved_at is None
                          else round(self.resolved_at - fault_end, 1))
        return {"kind": self.signal.kind, "what": self.signal.what,
                "fault": self.signal.fault, "bound_s": self.signal.within,
                "resolve_bound_s": self.signal.resolves_within,
                "seen": self.seen_at is not None, "seen_at": self.seen_at, "after_s": after,
                "resolved_at": self.resolved_at, "resolved_after_s": resolved_after,
                "checked": self.checked, "detail": self.detail,
                "passed": self.passed(fault_start, fault_end)}

    def passed(self, fault_start: float, fault_end: float) -> bool:
        if not self.checked:
            return True  # said so in the report, not counted against the run
        if self.seen_at is None:
            return False
        if self.signal.within is not None and self.seen_at - fault_start > self.signal.within:
            return False
        if self.signal.resolves_within is not None:
            return (self.resolved_at is not None
                    and self.resolved_at - fault_end <= self.signal.resolves_within)
        return True


# ---------------------------------------------------------------- alerts, live


def _matches_alert(alert: dict, signal: Signal) -> bool:
    labels = alert.get("labels", {})
    return (labels.get("alertname") == signal.match["alert"]
            and all(labels.get(k) == v for k, v in signal.match.get("labels", {}).items()))


class AlertWatch(Poller):
    """Polls Alertmanager's alerts every second and records, per alert signal, when it
    arrived and when it left."""

    def __init__(self, alertmanager_url: str, signals: list[Seen],
                 on_change: Any = None) -> None:
        super().__init__("alert watch")
        self.url = f"{alertmanager_url.rstrip('/')}/api/v2/alerts"
        self.seen = [s for s in signals if s.signal.kind == "alert"]
        self.on_change = on_change or (lambda seen, state: None)

    def settled(self) -> bool:
        """Every alert seen has left again."""
        return all(s.seen_at is None or s.resolved_at is not None for s in self.seen)

    def poll(self) -> None:
        try:
            alerts = get_json(self.url)
        except OSError as exc:  # said in the results of the alerts not seen by then
            for seen in self.seen:
                if seen.seen_at is None:
                    seen.detail = f"Alertmanager at {self.url} did not answer: {exc}"
            return
        now = time.time()
        for seen in self.seen:
            present = [a for a in alerts if _matches_alert(a, seen.signal)
                       and a.get("status", {}).get("state") != "unprocessed"]
            if present and seen.seen_at is None:
                seen.seen_at = now
                receivers = sorted({r["name"] for a in present for r in a.get("receivers", [])})
                seen.detail = f"at Alertmanager, receiver {', '.join(receivers) or '?'}"
                self.on_change(seen, "firing")
            elif present and seen.resolved_at is not None:
                seen.resolved_at = None  # back again: not resolved after all
            elif not present and seen.seen_at is not None and seen.resolved_at is None:
                seen.resolved_at = now
                self.on_change(seen, "resolved")



# ---------------------------------------------------------------- spans, logs, metrics


def _spans(path: Path, start: float, end: float) -> list[dict]:
    """The spans that began between start and end (unix seconds), read in one pass: the
    file holds every span since the stack started."""
    spans = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                span = json.loads(line)
            except ValueError:
                continue  # a line being written
            if _within(span, start, end):
                spans.append(span)
    return spans


def _span_matches(span: dict, match: dict, routes: dict[tuple[str, str], str]) -> bool:
    attributes = span.get("attributes", {})
    route = attributes.get("http.route") or routes.get((span["trace_id"],
                                                        span["parent_span_id"]))
    checks = [
        "name" not in match or span["name"] == match["name"],
        "route" not in match or route == match["route"],
        "statement" not in match or match["statement"] in str(attributes.get("db.statement")),
        "status" not in match or (match["status"] == "error"
                                  and span["status"] == "STATUS_CODE_ERROR"),
        "status_code" not in match
        or attributes.get("http.response.status_code") == match["status_code"],
        "min_duration_ms" not in match
        or span["duration_ns"] >= match["min_duration_ms"] * 1e6,
    ]
    return all(checks)


def find_span(path: Path, signal: Signal, start: float, end: float,
              baseline: tuple[float, float] | None = None) -> Seen:
    """The first span that shows the signal between start and end (unix seconds)."""
    seen = Seen(signal)
    if not path.exists():
        seen.checked, seen.detail = False, f"no traces at {path}"
        return seen
    earliest = min(start, baseline[0]) if baseline else start
    every = _spans(path, earliest, end)
    # A SQL span's route is its request's: server spans by (trace, span id).
    routes = {(s["trace_id"], s["span_id"]): s["attributes"].get("http.route", "")
              for s in every if s["kind"] == "SPAN_KIND_SERVER"}
    match = dict(signal.match)
    if "slower_than_baseline" in match:
        factor = match.pop("slower_than_baseline")
        before = [s["duration_ns"] for s in every if _within(s, *(baseline or (0, 0)))
                  and _span_matches(s, match, routes)]
        if not before:
            seen.detail = "no such span in the baseline phase to compare with"
            return seen
        typical = statistics.median(before)
        match["min_duration_ms"] = typical * factor / 1e6
        seen.detail = f"baseline median {typical / 1e6:.2f} ms; "
    spans = [s for s in every if _within(s, start, end)]
    found = sorted((s for s in spans if _span_matches(s, match, routes)),
                   key=lambda s: s["start_ns"])
    if found:
        span = found[0]
        seen.seen_at = span["start_ns"] / 1e9
        statement = span["attributes"].get("db.statement")
        seen.detail += (f"{span['name']} took {span['duration_ns'] / 1e6:.0f} ms in trace "
                       f"{span['trace_id']}" + (f": {statement[:80]}" if statement else "")
                       + f" ({len(found)} such spans)")
    else:
        seen.detail += f"no matching span among {len(spans)} in the window"
    return seen


def _within(span: dict, start: float, end: float) -> bool:
    return start <= span.get("start_ns", 0) / 1e9 <= end


def _timestamp(line: dict) -> float:
    return datetime.fromisoformat(line["timestamp"]).timestamp()


def find_log_line(path: Path, signal: Signal, start: float, end: float) -> Seen:
    seen = Seen(signal)
    if not path.exists():
        seen.checked, seen.detail = False, f"no API log at {path}"
        return seen
    wanted = signal.match.get("fields", {})
    count = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for text in lines:
            try:
                line = json.loads(text)
                at = _timestamp(line)
            except (ValueError, KeyError, TypeError):
                continue
            long_enough = line.get("duration_ms", 0) >= signal.match.get("min_duration_ms", 0)
            if (start <= at <= end and long_enough
                    and all(line.get(k) == v for k, v in wanted.items())):
                count += 1
                if seen.seen_at is None:
                    seen.seen_at = at
                    seen.detail = f"{line.get('message', '')[:100]} (request_id " \
                                  f"{line.get('request_id')})"
    if count:
        seen.detail += f"; {count} such lines"
    else:
        seen.detail = "no matching line in the window"
    return seen


def _query_range(prometheus_url: str, expr: str, start: float, end: float) -> list:
    """(time, value, labels) of every point, oldest first."""
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 5})
    result = get_json(f"{prometheus_url.rstrip('/')}/api/v1/query_range?{query}")
    return sorted((float(t), float(v), series["metric"])
                  for series in result["data"]["result"] for t, v in series["values"])


def find_metric(prometheus_url: str, signal: Signal, start: float, end: float,
                baseline: tuple[float, float] | None = None) -> Seen:
    seen = Seen(signal)
    try:
        points = _query_range(prometheus_url, signal.match["expr"], start, end)
        if "above_baseline" in signal.match:
            before = [v for _, v, _ in _query_range(prometheus_url, signal.match["expr"],
                                                    *(baseline or (start, start)))]
            if not before:
                seen.detail = "no value in the baseline phase to compare with"
                return seen
            typical = statistics.median(before)
            points = [p for p in points if p[1] > typical * signal.match["above_baseline"]]
            seen.detail = f"baseline median {typical:g}; "
    except OSError as exc:
        seen.checked, seen.detail = False, f"Prometheus does not answer: {exc}"
        return seen
    if points:
        at, value, labels = points[0]
        seen.seen_at = at
        seen.detail += f"{signal.match['expr']} = {value:g} {labels or ''}".strip()
    else:
        seen.detail += f"{signal.match['expr']}: nothing in the window"
    return seen


def find_exemplar(prometheus_url: str, signal: Signal, start: float, end: float,
                  traces: Path | None) -> Seen:
    """The first exemplar of at least min_value, and whether its trace was stored."""
    seen = Seen(signal)
    query = urllib.parse.urlencode({"query": signal.match["metric"], "start": start,
                                    "end": end})
    try:
        result = get_json(f"{prometheus_url.rstrip('/')}/api/v1/query_exemplars?{query}")
    except OSError as exc:
        seen.checked, seen.detail = False, f"Prometheus does not answer: {exc}"
        return seen
    exemplars = sorted((float(e["timestamp"]), float(e["value"]), e["labels"].get("trace_id"))
                       for series in result["data"] for e in series["exemplars"]
                       if float(e["value"]) >= signal.match.get("min_value", 0))
    stored = ({s["trace_id"] for s in _spans(traces, start, end)}
              if traces and traces.exists() else None)
    for at, value, trace_id in exemplars:
        if stored is None or trace_id in stored:
            seen.seen_at = at
            seen.detail = (f"exemplar {value:.3f} s -> trace {trace_id}"
                           + (" (stored)" if stored is not None else ""))
            break
    else:
        seen.detail = f"{len(exemplars)} exemplars of {signal.match.get('min_value', 0)} s " \
                      "or more, none with its trace stored"
    return seen


@dataclass
class Sources:
    prometheus_url: str
    traces: Path | None = None  # the native stack's logs/traces.jsonl
    api_log: Path | None = None  # the native stack's logs/api.log


def check_after(scenario: Scenario, run: dict, sources: Sources, alerts: list[Seen],
                ) -> list[dict[str, Any]]:
    """Every signal's result as scenario.json lists it; alerts come from the live watch."""
    faults = {f["name"]: f for f in run["faults"]}
    baseline = next(((p["start"], p["end"]) for p in run["phases"] if p["name"] == "baseline"),
                    None)
    results = []
    by_signal = {id(s.signal): s for s in alerts}
    for signal in scenario.signals:
        fault = faults[signal.fault]
        start = fault["start"]
        end = fault["end"] + (signal.resolves_within or 60)
        if signal.kind == "alert":
            seen = by_signal[id(signal)]
        elif signal.kind == "span":
            seen = (find_span(sources.traces, signal, start, end, baseline) if sources.traces
                    else Seen(signal, checked=False, detail="no trace source here"))
        elif signal.kind == "log":
            seen = (find_log_line(sources.api_log, signal, start, end) if sources.api_log
                    else Seen(signal, checked=False, detail="no API log here"))
        elif signal.kind == "exemplar":
            seen = find_exemplar(sources.prometheus_url, signal, start, end, sources.traces)
        else:
            seen = find_metric(sources.prometheus_url, signal, start, end, baseline)
        results.append(seen.to_json(fault["start"], fault["end"]))
    return results
