"""The lesson pages, written from the catalogue: docs/scenarios/README.md (the index),
docs/scenarios/<name>.md (for students) and docs/scenarios/answers/<name>.md (the answer
key, apart: a teacher can leave that folder out of the class's copy).

    python -m bank_scenarios lessons [--check]

A test fails when the committed pages differ from what the catalogue gives.
"""

from __future__ import annotations

from pathlib import Path

from bank_scenarios import catalogue
from bank_scenarios.catalogue import Answer, Scenario

DOCS = catalogue.HOME.parent / "docs" / "scenarios"
GENERATED = ("<!-- Written by `python -m bank_scenarios lessons` from "
             "scenarios/catalogue/{name}.toml{also}: edit those, not this page. -->\n\n")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _timeline(scenario: Scenario) -> list[str]:
    rows = ["| from | to | phase | what happens |", "|---|---|---|---|"]
    faults = {f.name: f for f in scenario.faults}
    for name, start, end in scenario.phases(1.0):
        what = " + ".join(faults[n].summary for n in name.split(" + ") if n in faults)
        if name == "baseline":
            what = f"{scenario.users} customers, the usual day"
        elif name == "recovery":
            what = "every fault undone by itself; the system recovers"
        rows.append(f"| {_clock(start)} | {_clock(end)} | {name} | {what} |")
    return rows


def student_page(scenario: Scenario) -> str:
    lines = [f"# {scenario.title}", "", f"Scenario `{scenario.name}`, "
             f"{scenario.duration / 60:g} minutes. [All scenarios](README.md)", "",
             "## The story", "", scenario.story, "", "## Run it", "",
             "```sh",
             f".venv/bin/python -m bank_scenarios run {scenario.name}   # natively, with "
             "`make stack` running",
             f"docker compose run --rm scenarios run {scenario.name}    # with the compose stack",
             "```", "",
             f"Or pick `{scenario.name}` in Locust's web UI (the *scenario* field) and press "
             "Start. `--speed 3` runs it three times faster (alerts keep their own pace).",
             "", "## Timeline", "", *_timeline(scenario), "", "## What to open", "",
             *[f"{n}. {hint}" for n, hint in enumerate(scenario.watch, 1)], "",
             "## Signals to find", "",
             "Each of these appears when the scenario runs (the run's report says when):", "",
             *[f"- **{s.kind}**: {s.what}" + (f" (within {s.within:.0f} s)" if s.within else "")
               + (f". Where: {s.where}" if s.where else "") for s in scenario.signals],
             "", "## Questions", "",
             *[f"{n}. {q}" for n, q in enumerate(scenario.questions, 1)], ""]
    if scenario.runbooks:
        lines += ["## Runbooks", "", *[f"- [{r}](../runbooks/{r}.md)" for r in scenario.runbooks],
                  ""]
    return "\n".join(lines)


def answer_page(scenario: Scenario, answer: Answer) -> str:
    lines = [f"# Answers: {scenario.title}", "",
             f"The answer key of [`{scenario.name}`](../{scenario.name}.md).", "",
             "## What happened", "", answer.summary, "", "## The questions", ""]
    for n, (question, reply) in enumerate(zip(scenario.questions, answer.answers,
                                              strict=True), 1):
        lines += [f"{n}. **{question}**", "", f"   {reply}", ""]
    return "\n".join(lines)


def index_page(scenarios: dict[str, Scenario]) -> str:
    lines = ["# Classroom scenarios", "",
             "Named incidents, each caused for real against the running stack and undone by "
             "itself at its deadline, even if whatever started it is killed. Each page has the "
             "story, what to open, the signals to find and questions; the answer keys are in "
             "[answers/](answers/), apart, so a class copy can leave them out. The lesson plan "
             "is in the [README](../../README.md#teaching-with-the-scenarios).", "",
             "| scenario | minutes | the incident | mechanism |", "|---|---|---|---|"]
    for scenario in scenarios.values():
        kinds = ", ".join(dict.fromkeys(f.kind for f in scenario.faults))
        lines.append(f"| [{scenario.name}]({scenario.name}.md) | "
                     f"{scenario.duration / 60:g} | {scenario.title} | {kinds} |")
    lines += ["", "Run one: `.venv/bin/python -m bank_scenarios run NAME` (natively, `make stack` "
              "first), "
              "`docker compose run --rm scenarios run NAME`, or Locust's web UI (its "
              "*scenario* field). `python -m bank_scenarios list` names them; `show NAME "
              "--answers` prints a page with its answers. How scenarios are declared and "
              "how each fault undoes itself: [scenarios/README.md](../../scenarios/README.md).",
              ""]
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    scenarios = catalogue.load_all()
    out = {DOCS / "README.md": GENERATED.format(name="*", also="") + index_page(scenarios)}
    for name, scenario in scenarios.items():
        out[DOCS / f"{name}.md"] = (GENERATED.format(name=name, also="")
                                    + student_page(scenario))
        out[DOCS / "answers" / f"{name}.md"] = (
            GENERATED.format(name=name, also=f" and scenarios/answers/{name}.toml")
            + answer_page(scenario, catalogue.answer(scenario)))
    return out


def write(check: bool = False) -> list[str]:
    """Write the pages (or only compare); the pages that differed."""
    stale = []
    for path, text in pages().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path.relative_to(catalogue.HOME.parent)))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
