"""python -m bank_scenarios: classroom scenarios from the terminal.

    list                     the catalogue
    show NAME [--answers]    a scenario's story, what to watch, questions (and the answers)
    run NAME [--speed 3]     run it against the native stack (`make stack`) under Locust,
                             narrated live; then its report (with the signals it showed)
    stop                     stop the running scenario now, every fault undone
    serve                    the scenario service (the stack runs it; settings.py)
    lessons [--check]        write docs/scenarios/ from the catalogue (or check it is current)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

from bank_scenarios import catalogue

SERVICE_URL = os.environ.get("SCENARIO_SERVICE_URL", "http://127.0.0.1:8090")


def _list(args: argparse.Namespace) -> int:
    for scenario in catalogue.load_all().values():
        minutes = scenario.duration / 60
        print(f"{scenario.name:<22} {minutes:4.1f} min  {scenario.title}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from bank_scenarios import lessons

    scenario = _scenario(args.name)
    print(lessons.student_page(scenario))
    if args.answers:
        print(lessons.answer_page(scenario, catalogue.answer(scenario)))
    return 0


def _scenario(name: str) -> catalogue.Scenario:
    try:
        return catalogue.load(name)
    except KeyError:
        raise SystemExit(f"no scenario {name!r}; `python -m bank_scenarios list` names them "
                         f"({', '.join(catalogue.names())})") from None


def _serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from bank_scenarios.service import create_app
    from bank_scenarios.settings import DEFAULT_PORT, targets_from_environment

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = create_app(targets_from_environment())
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"),
                port=int(os.environ.get("PORT", DEFAULT_PORT)), log_level="warning")
    return 0


def _stop(args: argparse.Namespace) -> int:
    request = urllib.request.Request(f"{args.service_url}/runs/current", method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            run = json.load(response)
    except urllib.error.HTTPError as exc:
        print(json.load(exc).get("detail", exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"the scenario service at {args.service_url} does not answer: {exc}",
              file=sys.stderr)
        return 1
    print(f"{run['scenario']} stopped; every fault undone")
    return 0


def _lessons(args: argparse.Namespace) -> int:
    from bank_scenarios import lessons

    stale = lessons.write(check=args.check)
    if args.check and stale:
        print("docs/scenarios/ is not what the catalogue gives; run `python -m bank_scenarios "
              f"lessons`: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from bank_scenarios import classroom_run

    return classroom_run.main(_scenario(args.name), args)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bank_scenarios", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the catalogue").set_defaults(func=_list)
    show = commands.add_parser("show", help="a scenario's lesson page")
    show.add_argument("name")
    show.add_argument("--answers", action="store_true", help="also print the answer key")
    show.set_defaults(func=_show)
    commands.add_parser("serve", help="the scenario service").set_defaults(func=_serve)
    stop = commands.add_parser("stop", help="stop the running scenario now")
    stop.add_argument("--service-url", default=SERVICE_URL)
    stop.set_defaults(func=_stop)
    lessons = commands.add_parser("lessons", help="write docs/scenarios/ from the catalogue")
    lessons.add_argument("--check", action="store_true", help="only check it is current")
    lessons.set_defaults(func=_lessons)
    run = commands.add_parser("run", help="run a scenario against the native stack, narrated")
    run.add_argument("name")
    run.add_argument("--speed", type=float, default=1.0,
                     help="faster than the catalogue's timings (alerts keep their own pace)")
    run.add_argument("--service-url", default=SERVICE_URL)
    run.add_argument("--api-url", default=os.environ.get("API_URL", "http://127.0.0.1:8000"))
    run.add_argument("--prometheus-url",
                     default=os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:9090"))
    run.add_argument("--alertmanager-url",
                     default=os.environ.get("ALERTMANAGER_URL", "http://127.0.0.1:9093"))
    run.add_argument("--locust-port", type=int, default=8089,
                     help="Locust's web UI, where Prometheus scrapes it")
    run.add_argument("--stack-dir", default=None,
                     help="the native stack's work dir, for its traces and API log "
                          "(default: .data/native-stack)")
    run.add_argument("--run-dir", default=None, help="the load run's folder (default: runs/…)")
    run.add_argument("--database-url", default=None,
                     help="check the books in SQL after the run (default: through the API)")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
