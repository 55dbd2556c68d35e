"""One request's story as rich renderables: a span waterfall, then its log lines."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bankops.otlp_receiver import Span
from bankops.terminal.loki import LogLine
from bankops.terminal.request_story import Story
from bankops.terminal.tempo import tree

BAR_WIDTH = 40  # the waterfall's width on a terminal of 130 columns or more
SPAN_WIDTH = 72  # the span column's at most: names, and SQL wrapped under them
KIND_STYLES = {"SPAN_KIND_SERVER": "cyan", "SPAN_KIND_CLIENT": "magenta",
               "SPAN_KIND_INTERNAL": "green"}
LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
# Span attributes worth reading at a glance: the request's own and its bank outcome.
SHOWN_PREFIXES = ("http.", "url.", "bank.", "error.")


def clock(time_ns: int, *, date: bool = False) -> str:
    moment = datetime.fromtimestamp(time_ns / 1e9, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[: -3] + " UTC" if date else \
        moment.strftime("%H:%M:%S.%f")[:-3]


def milliseconds(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms" if ns < 1e9 else f"{ns / 1e9:.2f} s"


def failed(span: Span) -> bool:
    return span.status == "STATUS_CODE_ERROR"


def sql(span: Span) -> str | None:
    """The statement of a database span (older and newer semantic conventions)."""
    return span.attributes.get("db.statement") or span.attributes.get("db.query.text")


def bar(offset_ns: int, duration_ns: int, total_ns: int, width: int = BAR_WIDTH) -> str:
    """The span's place in the trace: blanks before it, one block per 1/width of the trace."""
    total = max(total_ns, 1)
    start = min(width - 1, math.floor(offset_ns / total * width))
    end = max(start + 1, min(width, math.ceil((offset_ns + duration_ns) / total * width)))
    return " " * start + "█" * (end - start)


def layout(width: int) -> tuple[int, int]:
    """(span column, waterfall) widths on a terminal `width` wide: the start and duration
    columns and the padding take about 28."""
    bar_width = min(BAR_WIDTH, max(16, (width - 28) // 3))
    return min(SPAN_WIDTH, width - 28 - bar_width), bar_width


@dataclass
class Timeline:
    """A trace's span tree and when it ran: from `begin`, `total` nanoseconds long."""

    roots: list[Span]
    begin: int
    total: int

    @classmethod
    def of(cls, spans: list[Span]) -> Timeline:
        begin = min(span.start_ns for span in spans)
        return cls(tree(spans), begin, max(span.end_ns for span in spans) - begin)


def waterfall(timeline: Timeline, width: int) -> Table:
    span_width, bar_width = layout(width)
    begin, total = timeline.begin, timeline.total
    table = Table(box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("span", overflow="fold", max_width=span_width)
    table.add_column("start", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column(f"0 … {milliseconds(total)}", no_wrap=True)

    def add(span: Span, lead: str, last: bool, depth: int) -> None:
        branch = "" if depth == 0 else ("└─ " if last else "├─ ")
        more = "" if depth == 0 else ("   " if last else "│  ")
        style = "bold red" if failed(span) else KIND_STYLES.get(span.kind, "")
        name = Text(lead + branch) + Text(span.name, style=style)
        if failed(span):
            name += Text(" ✗", style="bold red")
        table.add_row(name, f"+{milliseconds(span.start_ns - begin)}",
                      milliseconds(span.duration_ns),
                      Text(bar(span.start_ns - begin, span.duration_ns, total, bar_width),
                           style=style))
        inner = lead + more + ("│  " if span.children else "   ")
        for note in _notes(span, begin, span_width - len(inner)):
            table.add_row(Text(inner) + note, "", "", "")
        for index, child in enumerate(span.children):
            add(child, lead + more, index == len(span.children) - 1, depth + 1)

    for root in timeline.roots:
        add(root, "", True, 0)
    return table


def _notes(span: Span, begin: int, width: int) -> list[Text]:
    """What a span's row alone does not say: its SQL (wrapped to `width`, each line under
    the span), its error, its events."""
    notes = []
    if statement := sql(span):
        notes += [Text(part, style="dim")
                  for part in textwrap.wrap(" ".join(statement.split()), max(width, 30))]
    if failed(span):
        reason = span.status_message or str(span.attributes.get("error.type", ""))
        notes.append(Text(f"✗ error{': ' + reason if reason else ''}", style="bold red"))
    times = span.event_times_ns or [0] * len(span.events)  # 0: OTLP's "unknown"
    for (name, attributes), time_ns in zip(span.events, times, strict=True):
        details = " ".join(f"{k}={v}" for k, v in attributes.items()
                           if not k.startswith("exception.stacktrace"))
        when = f" +{milliseconds(time_ns - begin)}" if time_ns else ""
        notes += [Text(part, style="yellow")
                  for part in textwrap.wrap(f"⚑ {name}{when} {details}", max(width, 30))]
    return notes


def attributes(spans: list[Span]) -> Text:
    """The server spans' request and outcome attributes, key=value."""
    shown = [f"{key}={value}" for span in spans if span.kind == "SPAN_KIND_SERVER"
             for key, value in sorted(span.attributes.items())
             if key.startswith(SHOWN_PREFIXES)]
    return Text("  ".join(shown), style="dim")


def log_table(lines: list[LogLine]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=f"Log lines ({len(lines)})", title_justify="left",
                  title_style="bold")
    for name in ("time", "level", "logger", "message"):
        table.add_column(name, no_wrap=name != "message", overflow="fold")
    for line in lines:
        level = str(line.get("level") or "")
        table.add_row(clock(line.time_ns), Text(level, style=LEVEL_STYLES.get(level, "")),
                      str(line.get("logger") or ""), str(line.get("message") or line.raw))
    if not lines:
        table.add_row("", "", "", "no line found")
    return table


def heading(story: Story, timeline: Timeline) -> Text:
    top = timeline.roots[0]
    status = top.attributes.get("http.response.status_code", "")
    text = Text.assemble(("Trace ", "bold"), (story.trace_id, "bold"),
                         f"  {top.name}{f' → {status}' if status else ''}"
                         f" in {milliseconds(timeline.total)}, {len(story.spans)} span"
                         f"{'' if len(story.spans) == 1 else 's'},"
                         f" {clock(timeline.begin, date=True)}")
    if story.request_ids:
        text.append(f"\nrequest {', '.join(story.request_ids)}"
                    f"  service {top.resource.get('service.name', '?')}")
    return text


def render(story: Story, width: int = 200) -> Group:
    """The story for a terminal `width` columns wide."""
    timeline = Timeline.of(story.spans)
    parts: list[RenderableType] = [heading(story, timeline), waterfall(timeline, width),
                                   attributes(story.spans)]
    if story.logs_error:
        parts.append(Text(f"Log lines: {story.logs_error}", style="bold yellow"))
    else:
        parts.append(log_table(story.lines))
    return Group(*parts)
