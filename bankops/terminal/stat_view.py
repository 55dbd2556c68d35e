"""A `bank stat` snapshot as rich tables: one per section, a sparkline per row with --since.

The sparklines take the room the numbers leave on the terminal: a table's history columns
get as many characters as fit (each a share of the history, averaged), and none when fewer
than MIN_POINTS fit; numbers are never cut.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from bankops.terminal.service_stats import SPARK_POINTS, Row, Snapshot

BARS = "▁▂▃▄▅▆▇█"
MIN_POINTS = 6  # a shorter sparkline says nothing: the column is left out
SLOW_S = 0.25  # the latency objective's threshold (slos.yml): slower answers are bad ones


def sparkline(values: list[float]) -> str:
    """One character per point, scaled from 0 (or below: an overspent budget) to the
    highest; a gap where there is no value."""
    top = max((v for v in values if not math.isnan(v)), default=0)
    if top <= 0:
        return "".join(" " if math.isnan(v) else BARS[0] for v in values)
    return "".join(" " if math.isnan(v) else BARS[round(max(v, 0) / top * (len(BARS) - 1))]
                   for v in values)


def resample(values: list[float], points: int) -> list[float]:
    """`points` averages of consecutive shares of `values` (NaN where a share has none)."""
    if len(values) <= points:
        return values
    out = []
    for index in range(points):
        share = values[index * len(values) // points:(index + 1) * len(values) // points]
        known = [v for v in share if not math.isnan(v)]
        out.append(sum(known) / len(known) if known else math.nan)
    return out


def rate(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def share(value: float) -> str:
    return "–" if math.isnan(value) else f"{value * 100:.1f} %"


def latency(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def count(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:g}"


def megabytes(value: float) -> str:
    return "–" if math.isnan(value) else f"{value / 2**20:.0f} MiB"


def up_or_down(value: float) -> Text | str:
    if math.isnan(value):
        return "–"
    return Text("up", style="green") if value == 1 else Text("DOWN", style="bold red")


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                 pad_edge=False)


def _number_column(table: Table, name: str) -> None:
    """A right-aligned column never cut: when the terminal is narrow, names wrap instead."""
    table.add_column(name, justify="right", no_wrap=True, min_width=max(len(name), 7))


def _name_column(table: Table, name: str) -> None:
    table.add_column(name, overflow="fold", min_width=len(name))


def _styled(text: str, bad: bool, style: str = "bold red") -> Text:
    return Text(text, style=style if bad else "")


# The columns with a history (service_stats' Section.history) and their headers, by section.
HISTORY_HEADERS = {"routes": {"rate": "req/s", "p95": "p95"}, "processes": {"cpu": "CPU"},
                   "database": {"in_use": "in use"}, "slos": {"budget_left": "budget left"}}


class Histories:
    """The history columns of one section's table, each `points` wide (none when 0)."""

    def __init__(self, snapshot: Snapshot, section: str, points: int) -> None:
        self.columns = HISTORY_HEADERS[section] if points else {}  # column -> header
        self.points = points
        self.since = snapshot.since

    def add_columns(self, table: Table) -> None:
        for header in self.columns.values():
            table.add_column(f"{header}, {self.since}", no_wrap=True, min_width=self.points)

    def cells(self, row: Row) -> list[str]:
        return [sparkline(resample(row.history.get(name, []), self.points))
                for name in self.columns]


def routes_table(snapshot: Snapshot, points: int = 0) -> Table:
    by_method = snapshot.route is not None
    table = _table(f"{snapshot.route} by method" if by_method else "Routes")
    _name_column(table, "method" if by_method else "route")
    for name in ("req/s", "5xx", "4xx", "p50", "p95", "p99", "in flight"):
        _number_column(table, name)
    histories = Histories(snapshot, "routes", points)
    histories.add_columns(table)
    rows = sorted(snapshot.rows("routes"), key=lambda r: (-_or_zero(r.get("rate")), r.key))
    for row in rows:
        table.add_row(*_route_cells(row.key[0], row), *histories.cells(row))
    for row in snapshot.rows("total"):
        table.add_section()
        table.add_row(*_route_cells("all", row), *histories.cells(row), style="bold")
    if not rows:
        table.add_row(f"no request to {snapshot.route or 'the API'} in Prometheus yet")
    return table


def _route_cells(name: str, row: Row) -> list[RenderableType]:
    errors, p99 = row.get("server_errors"), row.get("p99")
    return [name, rate(row.get("rate")), _styled(share(errors), errors > 0.01),
            share(row.get("refusals")), latency(row.get("p50")), latency(row.get("p95")),
            _styled(latency(p99), p99 > SLOW_S, "yellow"), count(row.get("in_flight"))]


def _or_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def statuses_table(snapshot: Snapshot, points: int = 0) -> Table:
    table = _table("Status codes")
    _name_column(table, "status")
    _number_column(table, "req/s")
    for row in sorted(snapshot.rows("statuses"), key=lambda r: r.key):
        table.add_row(_styled(row.key[0], row.key[0].startswith("5")), rate(row.get("rate")))
    return table


def processes_table(snapshot: Snapshot, points: int = 0) -> Table:
    table = _table("Processes (scrape targets)")
    for name in ("job", "instance", "up"):
        _name_column(table, name)
    _number_column(table, "CPU")
    _number_column(table, "memory")
    histories = Histories(snapshot, "processes", points)
    histories.add_columns(table)
    for row in sorted(snapshot.rows("processes"), key=lambda r: r.key):
        cpu = row.get("cpu")
        table.add_row(row.key[0], row.key[1], up_or_down(row.get("up")),
                      "–" if math.isnan(cpu) else f"{cpu * 100:.1f} %",
                      megabytes(row.get("memory")), *histories.cells(row))
    return table


def database_table(snapshot: Snapshot, points: int = 0) -> Table:
    table = _table("Database")
    for name in ("pool", "in use", "idle", "overflow", "wait p95", "errors/s", "PostgreSQL",
                 "connections"):
        _number_column(table, name)
    histories = Histories(snapshot, "database", points)
    histories.add_columns(table)
    for row in snapshot.rows("database"):
        errors = row.get("errors")
        table.add_row(count(row.get("pool_size")), count(row.get("in_use")),
                      count(row.get("idle")), count(row.get("overflow")),
                      latency(row.get("wait_p95")), _styled(rate(errors), errors > 0),
                      up_or_down(row.get("postgres_up")),
                      f"{count(row.get('connections'))} of {count(row.get('max_connections'))}",
                      *histories.cells(row))
    return table


def slos_table(snapshot: Snapshot, points: int = 0) -> Table:
    table = _table("Service level objectives")
    _name_column(table, "objective")
    for name in ("target", "budget left", "burn 1m", "burn 6m"):
        _number_column(table, name)
    histories = Histories(snapshot, "slos", points)
    histories.add_columns(table)
    for row in sorted(snapshot.rows("slos"), key=lambda r: r.key):
        left, burn = row.get("budget_left"), row.get("burn_1m")
        table.add_row(row.key[0], share(row.get("objective")).replace(".0 %", " %"),
                      _styled(share(left), left < 0.25), _styled(_burn(burn), burn > 1),
                      _burn(row.get("burn_6m")), *histories.cells(row))
    if not snapshot.rows("slos"):
        table.add_row("none recorded (slo-rules.yml not loaded?)")
    return table


def _burn(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}×"


def alerts_line(snapshot: Snapshot) -> Text:
    firing = sorted(snapshot.rows("alerts"), key=lambda r: r.key)
    if not firing:
        return Text("Alerts firing: none", style="green")
    names = ", ".join(f"{name} ({severity}{', ' + slo if slo else ''})"
                      for name, severity, slo in (row.key for row in firing))
    return Text(f"Alerts firing: {names}", style="bold red")


Build = Callable[[Snapshot, int], Table]


def fitted(section: str, build: Build, snapshot: Snapshot, width: int) -> Table:
    """The section's table with as many history points as fit in `width` beside its
    numbers."""
    headers = [f"{header}, {snapshot.since}"
               for header in HISTORY_HEADERS.get(section, {}).values()]
    if not snapshot.since or not headers:
        return build(snapshot, 0)
    console = Console(width=width)
    numbers = Measurement.get(console, console.options, build(snapshot, 0)).maximum
    for points in range(SPARK_POINTS + 1, MIN_POINTS - 1, -1):
        # Each history column: its points or its header, whichever is wider, and padding;
        # a little to spare, as rich rounds widths.
        if numbers + sum(max(points, len(header)) + 2 for header in headers) + 2 <= width:
            return build(snapshot, points)
    table = build(snapshot, 0)
    table.caption = f"(no room for its history on {width} columns: widen the terminal)"
    table.caption_justify = "left"
    return table


def render(snapshot: Snapshot, prometheus_url: str, width: int = 200) -> Group:
    """The snapshot for a terminal `width` columns wide."""
    when = datetime.fromtimestamp(snapshot.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    heading = Text.assemble(("bank stat", "bold"), f"  {when}  rates over {snapshot.window}",
                            f"  from {prometheus_url}")
    parts: list[RenderableType] = [heading]
    parts += [Text(f"! {warning}", style="bold yellow") for warning in snapshot.warnings]
    tables = {"routes": routes_table} | ({"statuses": statuses_table} if snapshot.route else {}) | {
        "processes": processes_table, "database": database_table, "slos": slos_table}
    parts += [fitted(section, build, snapshot, width) for section, build in tables.items()]
    parts.append(alerts_line(snapshot))
    return Group(*parts)
