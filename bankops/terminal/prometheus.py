"""PromQL over Prometheus' HTTP API: /api/v1/query and /api/v1/query_range."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bankops.terminal.backends import Backend, BackendError, setting


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float  # an instant query's value; nan for a range query's series
    points: tuple[tuple[float, float], ...] = ()  # (unix time, value) of a range query


class Prometheus(Backend):
    def __init__(self, url: str | None = None) -> None:
        super().__init__("Prometheus", url or setting("PROMETHEUS_URL"))

    def instant(self, expr: str, at: float) -> list[Series]:
        data = self._data("/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, expr)
        return [Series(item["metric"], _number(item["value"][1])) for item in data]

    def over_time(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        data = self._data("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}",
                                                  "end": f"{end:.3f}", "step": f"{step:g}"},
                          expr)
        return [Series(item["metric"], math.nan,
                       tuple((float(t), _number(v)) for t, v in item["values"]))
                for item in data]

    def _data(self, path: str, params: dict, expr: str) -> list[dict]:
        body = self.get_json(path, params)
        if body.get("status") != "success":
            raise BackendError(f"Prometheus refused {expr!r}: {body.get('error', body)}")
        return body["data"]["result"]


def _number(text: str) -> float:
    return float(text)  # Prometheus writes NaN and +Inf as "NaN" and "+Inf": float() reads both
