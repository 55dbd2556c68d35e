"""Locust's own CSV files, read as they are: the report's numbers are these numbers.

    locust_stats.csv          one row per request name, then "Aggregated": the whole run
    locust_stats_history.csv  one row per second (and per name with --csv-full-history):
                              the current rate and percentiles, over Locust's last 10 s
    locust_failures.csv       failures grouped by request name and reason
    locust_exceptions.csv     errors inside the Locust file itself
    locust_request_ids.json   the slowest and some failed requests per name, by X-Request-ID
                              (written by loadtest/bank_loadtest/request_ids.py, not by Locust)

Response times are in milliseconds; percentiles are Locust's (whole integers, "N/A" when a
name has no request).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

AGGREGATED = "Aggregated"


def _number(text: str) -> float | None:
    return None if text in ("", "N/A") else float(text)


def _percentile(text: str) -> int | None:
    return None if text in ("", "N/A") else int(text)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@dataclass(frozen=True)
class StatsRow:
    """One line of locust_stats.csv: a request name over the whole run."""

    method: str
    name: str
    requests: int
    failures: int
    requests_per_second: float
    failures_per_second: float
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    max_ms: float | None
    average_ms: float | None

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def is_total(self) -> bool:
        return self.name == AGGREGATED


def read_stats(path: Path) -> list[StatsRow]:
    """Every request name in Locust's order, the Aggregated row last."""
    return [
        StatsRow(
            method=row["Type"], name=row["Name"],
            requests=int(row["Request Count"]), failures=int(row["Failure Count"]),
            requests_per_second=float(row["Requests/s"]),
            failures_per_second=float(row["Failures/s"]),
            p50_ms=_percentile(row["50%"]), p95_ms=_percentile(row["95%"]),
            p99_ms=_percentile(row["99%"]),
            max_ms=_number(row["Max Response Time"]),
            average_ms=_number(row["Average Response Time"]),
        )
        for row in _rows(path)
    ]


@dataclass(frozen=True)
class Failure:
    method: str
    name: str
    error: str
    occurrences: int


def read_failures(path: Path) -> list[Failure]:
    if not path.exists():
        return []
    return [Failure(r["Method"], r["Name"], r["Error"], int(r["Occurrences"]))
            for r in _rows(path)]


def read_exceptions(path: Path) -> list[dict[str, str]]:
    """Errors raised in the Locust file (a bug in the test, not in the API)."""
    if not path.exists():
        return []
    return [{"count": r["Count"], "message": r["Message"]} for r in _rows(path)]


@dataclass
class History:
    """The Aggregated rows of locust_stats_history.csv, one per second."""

    timestamps: list[float]  # epoch seconds
    users: list[int]
    requests_per_second: list[float]
    failures_per_second: list[float]
    p50_ms: list[float]  # NaN where Locust had no value yet
    p95_ms: list[float]
    p99_ms: list[float]

    @property
    def error_ratio(self) -> list[float]:
        """Failures/s over requests/s at each second: both are Locust's 10 s window."""
        return [f / r if r > 0 else math.nan
                for f, r in zip(self.failures_per_second, self.requests_per_second, strict=True)]


def _history_percentile(text: str) -> float:
    # Locust writes 0 (or N/A) until its 10 s response-time cache has data; no request over
    # HTTP takes 0 ms, so 0 means "not known yet" and is left out of the chart.
    value = _number(text)
    return value or math.nan


def read_history(path: Path) -> History:
    rows = [r for r in _rows(path) if r["Name"] == AGGREGATED]
    return History(
        timestamps=[float(r["Timestamp"]) for r in rows],
        users=[int(r["User Count"]) for r in rows],
        requests_per_second=[float(r["Requests/s"]) for r in rows],
        failures_per_second=[float(r["Failures/s"]) for r in rows],
        p50_ms=[_history_percentile(r["50%"]) for r in rows],
        p95_ms=[_history_percentile(r["95%"]) for r in rows],
        p99_ms=[_history_percentile(r["99%"]) for r in rows],
    )


# ------------------------------------------------------------------------ request ids


@dataclass(frozen=True)
class KeptRequest:
    """One request whose id was kept: look it up in the API's logs by request_id."""

    request_id: str
    status: int  # 0: no answer (connection error)
    response_time_ms: float
    at: str  # UTC, when it was sent
    echoed: bool  # the API answered with this X-Request-ID
    failure: str | None  # the failure table's reason, or None


@dataclass(frozen=True)
class KeptFailures:
    reason: str
    count: int  # how many failed for this reason (all of them, not only those kept)
    requests: list[KeptRequest]  # the most recent few


@dataclass(frozen=True)
class RequestIds:
    """One request name's entry in locust_request_ids.json."""

    method: str
    name: str
    slowest: list[KeptRequest]  # slowest first
    failures: list[KeptFailures]  # most frequent reason first


def _kept(sample: dict) -> KeptRequest:
    return KeptRequest(request_id=sample["request_id"], status=int(sample["status"]),
                       response_time_ms=float(sample["response_time_ms"]), at=sample["at"],
                       echoed=bool(sample.get("echoed")), failure=sample.get("failure"))


def read_request_ids(path: Path) -> dict[tuple[str, str], RequestIds] | None:
    """(method, name) -> what was kept; None when the run has no such file."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return {(entry["method"], entry["name"]): RequestIds(
        method=entry["method"], name=entry["name"],
        slowest=[_kept(s) for s in entry["slowest"]],
        failures=[KeptFailures(f["reason"], int(f["count"]), [_kept(s) for s in f["requests"]])
                  for f in entry["failures"]],
    ) for entry in data["names"]}
