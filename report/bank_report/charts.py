"""The report's charts, drawn by matplotlib into PNG files.

Every chart shares one x axis, seconds since the run started, so a Locust chart and a
Prometheus chart can be read side by side. Every chart carries the same marks on that axis
(Marks): the things done during the run, numbered, and a scenario's faults, shaded and named
in the legend. Figures are made with matplotlib's object API (Figure, not pyplot): no global
state, no display needed, the Agg renderer writes the PNG.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from bank_report.locust_data import History
from bank_report.prometheus_data import PrometheusData
from bank_report.slo_data import SloData
from bankops.slo.spec import duration

SIZE_INCHES = (8.0, 3.0)
DPI = 90  # about 720 x 270 pixels: readable, and small enough to commit a sample
X_LABEL = "time since the run started (s)"
COLORS = {"p50": "tab:blue", "p95": "tab:orange", "p99": "tab:red",
          "failures/s": "tab:red", "failures": "tab:red",
          "2xx": "tab:green", "3xx": "tab:blue", "4xx": "tab:orange", "5xx": "tab:red"}


@dataclass(frozen=True)
class Chart:
    file: str
    title: str
    how_to_read: str
    source: str  # "Locust", "Prometheus", or "SLO" (Prometheus, shown with the objectives)
    series: tuple[str, ...] = ()  # the lines drawn, as named in the legend


@dataclass(frozen=True)
class Line:
    label: str
    seconds: Sequence[float]
    values: Sequence[float]


@dataclass(frozen=True)
class Event:
    """Something done during the run (events.json), marked on every chart by its number."""

    seconds: float
    what: str


@dataclass(frozen=True)
class Shade:
    """A time window shaded on every chart (a scenario's fault while applied), named in the
    legend."""

    start: float  # seconds since the run started
    end: float
    label: str


# Light tints of colours no series uses (blue, orange, green, red) nor the grid and the marks
# (grey), one per fault.
SHADE_COLORS = ("tab:purple", "tab:olive", "tab:cyan", "tab:brown", "tab:pink")
SHADE_ALPHA = 0.2
# Characters per legend line: a long fault name wraps instead of squeezing the plot.
LEGEND_WIDTH = 28


@dataclass(frozen=True)
class Marks:
    """What every chart marks on its time axis: the things done during the run (events.json),
    a scenario's faults (shaded) and the boundaries between its phases (thin lines)."""

    events: Sequence[Event] = ()
    shades: Sequence[Shade] = ()
    boundaries: Sequence[float] = ()


def _thousands(value: float, _position: object) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


@dataclass(frozen=True)
class Threshold:
    """A horizontal line: a value the lines are judged against (an alert's threshold)."""

    value: float
    label: str


def _mark(axes: Axes, marks: Marks, x_max: float) -> None:
    """The marks every chart shares: faults shaded (under the lines), phase boundaries, events
    numbered."""
    for number, shade in enumerate(marks.shades):
        # Cut to the run: a fault outside it has nothing to shade and no legend entry.
        start, end = max(shade.start, 0), min(shade.end, x_max)
        if start < end:
            axes.axvspan(start, end, color=SHADE_COLORS[number % len(SHADE_COLORS)],
                         alpha=SHADE_ALPHA, linewidth=0,
                         label=textwrap.fill(shade.label, LEGEND_WIDTH))
    for boundary in marks.boundaries:
        if 0 < boundary < x_max:
            axes.axvline(boundary, color="grey", linewidth=0.6, alpha=0.6)
    for number, event in enumerate(marks.events, start=1):
        # Only the event's number on the chart: the report lists what each number was.
        axes.axvline(event.seconds, color="grey", linestyle="--", linewidth=1)
        axes.annotate(str(number), (event.seconds, 1), xycoords=("data", "axes fraction"),
                      xytext=(0, -3), textcoords="offset points", ha="center", va="top",
                      fontsize=7, color="dimgrey",
                      bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "ec": "grey"})


def _draw(path: Path, title: str, y_label: str, lines: list[Line], marks: Marks,
          x_max: float, *, percent: bool = False, integers: bool = False,
          thresholds: Sequence[Threshold] = ()) -> None:
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    for line in lines:
        axes.plot(line.seconds, line.values, label=line.label, linewidth=1.5,
                  color=COLORS.get(line.label))
    for threshold in thresholds:
        axes.axhline(threshold.value, color="black", linestyle=":", linewidth=1,
                     label=threshold.label)
    _mark(axes, marks, x_max)
    axes.set_title(title, fontsize=10, loc="left")
    axes.set_xlabel(X_LABEL)
    axes.set_ylabel(y_label)
    axes.set_ylim(bottom=0)  # every quantity here starts at zero; a cropped axis exaggerates
    axes.set_xlim(0, x_max)  # the whole run on every chart, so they line up
    axes.grid(True, alpha=0.3)
    if percent:
        axes.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    else:
        axes.yaxis.set_major_formatter(FuncFormatter(_thousands))
    if integers:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(lines) + len(thresholds) > 1 or marks.shades:
        # Beside the plot, never over the lines.
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    figure.savefig(path, dpi=DPI)


def _seconds(timestamps: Sequence[float], t0: float) -> list[float]:
    return [t - t0 for t in timestamps]


def draw_locust(history: History, t0: float, x_max: float, out: Path,
                marks: Marks) -> list[Chart]:
    """Four charts from locust_stats_history.csv (Aggregated rows, Locust's 10 s window)."""
    x = _seconds(history.timestamps, t0)
    charts = [
        (Chart("throughput.png", "Throughput (Locust)",
               "Requests per second Locust sent and saw fail, over its last 10 s. A flat line "
               "is a steady load; a drop while users stay the same means the API slowed down.",
               "Locust"),
         "requests per second",
         [Line("requests/s", x, history.requests_per_second),
          Line("failures/s", x, history.failures_per_second)], {}),
        (Chart("latency.png", "Response time percentiles (Locust)",
               "Of the requests in the last 10 s, half were faster than p50, 95 % faster than "
               "p95, 99 % faster than p99. A gap between p50 and p99 is a slow tail.",
               "Locust"),
         "response time (ms)",
         [Line("p50", x, history.p50_ms), Line("p95", x, history.p95_ms),
          Line("p99", x, history.p99_ms)], {}),
        (Chart("error_ratio.png", "Error ratio (Locust)",
               "The share of requests that failed (failures/s over requests/s, last 10 s). "
               "Zero is the goal; a 409 insufficient_funds is a normal answer, not a failure.",
               "Locust"),
         "failed requests (%)", [Line("failures", x, history.error_ratio)], {"percent": True}),
        (Chart("users.png", "Simulated users (Locust)",
               "How many customers Locust was running. Read the other charts against it: "
               "more users should mean more requests per second, not slower answers.",
               "Locust"),
         "users", [Line("users", x, history.users)], {"integers": True}),
    ]
    for chart, y_label, lines, options in charts:
        _draw(out / chart.file, chart.title, y_label, lines, marks, x_max, **options)
    return [replace(chart, series=tuple(line.label for line in lines))
            for chart, _, lines, _ in charts]


# chart key (prometheus_data.QUERIES) -> how it is drawn; `scale` converts to the axis unit.
PROMETHEUS_CHARTS = {
    "server_latency": (
        Chart("server_latency.png", "Server-side latency (Prometheus)",
              "The API's own timing of its answers (http_request_duration_seconds, 30 s "
              "rate). Below Locust's: the difference is the network and Locust itself.",
              "Prometheus"),
        "response time (ms)", 1000.0, {}),
    "requests_by_status": (
        Chart("requests_by_status.png", "Requests by status class (Prometheus)",
              "Answers per second by HTTP status class. 4xx includes the bank's refusals "
              "(409); 5xx are server errors, the ones an alert watches.", "Prometheus"),
        "requests per second", 1.0, {}),
    "db_pool": (
        Chart("db_pool.png", "Database connection pool (Prometheus)",
              "Connections in use (checked out), open but idle, and beyond the pool size "
              "(overflow). Checked out near the pool size means requests wait for one.",
              "Prometheus"),
        "connections", 1.0, {"integers": True}),
    "process_cpu": (
        Chart("process_cpu.png", "API CPU (Prometheus)",
              "CPU time the API's processes used per second: 1.0 is one core fully busy. "
              "Near the machine's core count, the API is CPU-bound.", "Prometheus"),
        "CPU cores used", 1.0, {}),
    "process_memory": (
        Chart("process_memory.png", "API memory (Prometheus)",
              "Resident memory of the API's processes. It should level off under a steady "
              "load; a line that keeps climbing is a leak.", "Prometheus"),
        "resident memory (MiB)", 1 / 2**20, {}),
}


def draw_prometheus(data: PrometheusData, t0: float, x_max: float, out: Path,
                    marks: Marks) -> list[Chart]:
    drawn = []
    for key, (chart, y_label, scale, options) in PROMETHEUS_CHARTS.items():
        series = data.charts.get(key)
        if not series:
            continue
        lines = [Line(s.label, _seconds(s.timestamps, t0),
                      [v * scale if not math.isnan(v) else v for v in s.values])
                 for s in series]
        _draw(out / chart.file, chart.title, y_label, lines, marks, x_max, **options)
        drawn.append(replace(chart, series=tuple(line.label for line in lines)))
    return drawn


SLO_CHART_FILE = "slo_burn_rate.png"


def draw_slo(data: SloData, t0: float, x_max: float, out: Path,
             marks: Marks) -> list[Chart]:
    """Each objective's burn rate over the run (slo:burn_rate:rate<window>), and the threshold
    above which the fastest burn-rate alert fires."""
    if not data.burn_rate:
        return []
    window, pair = data.chart_window, data.chart_pair
    production, short = duration(pair.long), duration(data.spec.demo(pair.short))
    chart = Chart(
        SLO_CHART_FILE, f"Error budget burn rate over {window} (Prometheus)",
        f"How many times faster than its objective allows each objective spends its error "
        f"budget, over the last {window} (production: {production}): 1 spends exactly the "
        f"budget over the period, 0 spends none. Above the dotted line here and over "
        f"{short} as well, {data.chart_alert.alert} fires ({data.chart_alert.severity}).",
        "SLO")
    lines = [Line(s.label, _seconds(s.timestamps, t0), s.values) for s in data.burn_rate]
    threshold = Threshold(pair.burn_rate, f"{data.chart_alert.alert} ({pair.burn_rate:g}x)")
    _draw(out / chart.file, chart.title, "burn rate (x the allowed pace)", lines, marks,
          x_max, thresholds=[threshold])
    return [replace(chart, series=tuple(line.label for line in lines))]
