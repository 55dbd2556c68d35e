"""The `bank` console script: `bank stat` and `bank trace` (see __init__.py)."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from bankops.terminal import service_stats, stat_view, trace_view
from bankops.terminal.backends import DEFAULTS, BackendError
from bankops.terminal.loki import Loki
from bankops.terminal.prometheus import Prometheus
from bankops.terminal.request_story import ID, StoryError, tell
from bankops.terminal.tempo import Tempo

NOTHING_TO_SHOW, BACKEND_FAILED = 1, 3  # 2 is click's, for a bad argument
EXIT_STATUS = """\b
Exit status: 0 shown; 1 nothing to show (an unknown route or id, a request not traced, a
trace not in Tempo yet); 2 a bad argument; 3 Prometheus, Tempo or Loki did not answer."""


class Duration(click.ParamType):
    """A Prometheus duration: 30s, 15m, 1h30m."""

    name = "duration"

    def convert(self, value, param, ctx) -> str:
        try:
            service_stats.seconds(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        return value


def _url_option(name: str, variable: str):
    return click.option(f"--{name}", "url_" + name, envvar=variable, default=DEFAULTS[variable],
                        show_default=True, show_envvar=True, metavar="URL",
                        help=f"{name.capitalize()}'s HTTP API.")


def _fail(console: Console, message: str, status: int) -> None:
    console.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
    raise SystemExit(status)


@click.group(epilog=EXIT_STATUS, context_settings={"help_option_names": ["-h", "--help"],
                                                   "max_content_width": 100})
def bank() -> None:
    """The bank stack from a terminal: live numbers (`stat`) and one request's story
    (`trace`). Every number comes from Prometheus, every span from Tempo, every log line from
    Loki; the native stack (`make stack`) answers the same look-ups on the same ports."""


@bank.command(epilog=EXIT_STATUS)
@click.argument("route", required=False)
@click.option("--window", default="1m", show_default=True, type=Duration(),
              help="Rate window of every rate and quantile (a Prometheus duration).")
@click.option("--since", type=Duration(),
              help="Add a sparkline per row: its history over this long (e.g. 15m, 1h).")
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C.")
@click.option("--interval", default=5.0, show_default=True, metavar="SECONDS",
              type=click.FloatRange(min=0.5),
              help="Seconds between refreshes with --watch (Prometheus scrapes every 5 s).")
@click.option("--queries", is_flag=True,
              help="Print the PromQL instead of running it, to paste into Prometheus.")
@_url_option("prometheus", "PROMETHEUS_URL")
def stat(route: str | None, window: str, since: str | None, watch: bool, interval: float,
         queries: bool, url_prometheus: str) -> None:
    """How the API is doing now, from Prometheus: per route (ROUTE alone, by method, with its
    status codes; a template such as /accounts/{account_id} or a path such as /accounts/42)
    the request rate, the shares of 5xx answers and of 4xx refusals, p50/p95/p99 latency and
    requests in flight; per scrape target its CPU and memory; the database pool and
    PostgreSQL; the service level objectives' error budget left; the alerts firing."""
    out, err = Console(), Console(stderr=True)
    if queries:
        _print_queries(out, window, route)
        return
    prometheus = Prometheus(url_prometheus)

    def view():
        found = service_stats.snapshot(prometheus, window=window, route=route, since=since)
        return stat_view.render(found, prometheus.url, out.width)

    try:
        first = view()
    except (BackendError, service_stats.UnknownRoute) as error:
        _fail(err, str(error), BACKEND_FAILED if isinstance(error, BackendError)
              else NOTHING_TO_SHOW)
    if not watch:
        out.print(first)
        return
    _watch(out, first, view, interval)


def _watch(console: Console, first, view, interval: float) -> None:
    """Redraw in place on a terminal; into a pipe or a file, one snapshot after another. A
    failed refresh says so and the next one tries again."""

    def refreshed():
        try:
            return view()
        except (BackendError, service_stats.UnknownRoute) as error:
            return Text(f"error: {error} (retrying every {interval:g} s)", style="bold red")

    try:
        if not console.is_terminal:
            console.print(first)
            while True:
                time.sleep(interval)
                console.print(refreshed())
        with Live(first, console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(refreshed(), refresh=True)
    except KeyboardInterrupt:
        pass


def _print_queries(console: Console, window: str, route: str | None) -> None:
    for name, section in service_stats.sections_for(window, route).items():
        console.print(Text(name, style="bold"))
        for column, expr in section.queries.items():
            console.print(f"  {column}: {expr}", soft_wrap=True, highlight=False)


@bank.command(epilog=EXIT_STATUS)
@click.argument("request")
@click.option("--within", default="24h", show_default=True, type=Duration(),
              help="How far back to look for the id in the API's log lines.")
@_url_option("tempo", "TEMPO_URL")
@_url_option("loki", "LOKI_URL")
def trace(request: str, within: str, url_tempo: str, url_loki: str) -> None:
    """One request's story: REQUEST is a trace id (from an exemplar, a log line, Grafana) or a
    request id (the X-Request-ID answered, the `request_id` of a problem body or a log line).
    Prints the trace's spans as a waterfall with their offsets and durations, the SQL of each
    database span, errors and events, then the request's log lines in time order."""
    out, err = Console(), Console(stderr=True)
    if not ID.fullmatch(request):
        raise click.BadParameter("an id is 1 to 128 letters, digits or . _ : @ / + = -",
                                 param_hint="REQUEST")
    try:
        story = tell(request, Tempo(url_tempo), Loki(url_loki),
                     within_s=service_stats.seconds(within))
    except StoryError as error:
        if error.lines:
            out.print(trace_view.log_table(error.lines))
        _fail(err, str(error), NOTHING_TO_SHOW)
    except BackendError as error:
        _fail(err, str(error), BACKEND_FAILED)
    out.print(trace_view.render(story, out.width))
    if story.logs_error:
        raise SystemExit(BACKEND_FAILED)


def main() -> None:
    bank(prog_name="bank")
