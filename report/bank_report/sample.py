"""Make the sample report in report/sample/ from a real run of the native stack.

    .venv/bin/python -m bank_report.sample

1. starts the native stack (bankops.stack: embedded PostgreSQL, the API, whose fault switch
   it drives with the stack's admin token, postgres-exporter, Prometheus, Alertmanager) in a
   temporary folder,
   on ports of its own (API 8310, Prometheus 9390, Alertmanager 9393, exporter 9387, Locust
   8389, scenarios 8390, trace and log look-ups 9320 and 9310), so it can run beside
   `make stack`;
2. runs a steady load (bank_loadtest: 20 users, 150 s; the money checked in SQL after
   it), with the fault switch on from 20 s to 120 s: 20 % of the answers of two routes become
   500 fault_injected and take 250 ms longer, long enough for the 5xx and failure-ratio
   alerts to fire (their `for:` is 1 minute), then the API recovers;
3. generates the report from the run's files with Prometheus still up, and replaces
   report/sample/ with it: the report (index.html, report.md, summary.json, PNGs), the run
   files it was made from (run/) and a README saying how and when it was made.

The run is expected to fail the load runner's 1 % failure limit: that is the fault switch.
sample/ is only ever written by this script.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bank_loadtest.runner import run_load
from bank_report import generate, machine
from bankops.stack.native import NativeStack, Ports

SAMPLE = Path(__file__).resolve().parents[1] / "sample"  # report/sample/
PORTS = Ports(api=8310, prometheus=9390, alertmanager=9393, postgres_exporter=9387, locust=8389,
              scenarios=8390, tempo=9320, loki=9310)
# The run's files the report is made from; Locust's own report.html (1 MB) and logs stay out.
RUN_FILES = ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
             "locust_exceptions.csv", "locust_request_ids.json", "run.json", "invariants.json",
             "machine.json", "events.json")
FAULTS = {"latency_ms": 250, "error_rate": 0.2,
          "routes": ["/accounts/{account_id}", "/transfers"]}


class FaultWindow(threading.Thread):
    """Turns the fault switch on, then off, at set seconds from now; what it did, and when,
    goes to events.json so the report marks it on every chart."""

    def __init__(self, stack: NativeStack, faults: dict, on_at: float, off_at: float):
        super().__init__(daemon=True)
        self.stack, self.faults, self.on_at, self.off_at = stack, faults, on_at, off_at
        self.events: list[dict] = []
        self.cancelled = threading.Event()

    def _at(self, start: float, seconds: float) -> bool:
        return not self.cancelled.wait(max(0.0, start + seconds - time.monotonic()))

    def _record(self, what: str) -> None:
        self.events.append({"at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                            "what": what})

    def run(self) -> None:
        start = time.monotonic()
        if not self._at(start, self.on_at):
            return
        self.stack.set_faults(self.faults)
        routes = " and ".join(self.faults["routes"])
        self._record(f"fault switch on: {self.faults['error_rate']:.0%} errors, "
                     f"+{self.faults['latency_ms']} ms on {routes}")
        self._at(start, self.off_at)
        self.stack.clear_faults()
        self._record("fault switch off")


README_TITLE = "# Sample report (generated)"


def make_sample(users: int, duration: int, fault_on: float, fault_off: float,
                out: Path, command: str) -> Path:
    readme = out / "README.md"
    if out.exists() and any(out.iterdir()) and not (
            readme.exists() and readme.read_text().startswith(README_TITLE)):
        raise SystemExit(f"{out} holds something else than a sample report: not replacing it")
    with tempfile.TemporaryDirectory(prefix="bank-report-sample-") as tmp:
        work = Path(tmp)
        run_dir, staged = work / "run", work / "sample"
        run_dir.mkdir()
        (run_dir / "machine.json").write_text(json.dumps(machine.describe(), indent=2) + "\n")
        with NativeStack(work / "stack", ports=PORTS) as stack:
            print(f"native stack up in {work / 'stack'}:\n{stack.describe()}", flush=True)
            faults = FaultWindow(stack, FAULTS, fault_on, fault_off)
            faults.start()
            try:
                run_load(stack.api_url, shape="steady", users=users, duration=duration,
                         run_dir=run_dir, database_url=stack.database_url,
                         web_port=PORTS.locust)
            finally:
                faults.cancelled.set()
                faults.join(timeout=15)
            (run_dir / "events.json").write_text(json.dumps(faults.events, indent=2) + "\n")
            time.sleep(6)  # one more scrape, so Prometheus holds the run's last seconds

            (staged / "run").mkdir(parents=True)
            for name in RUN_FILES:
                if (run_dir / name).exists():
                    shutil.copy2(run_dir / name, staged / "run" / name)
            generate.generate(staged / "run", staged, prometheus=stack.prometheus_url)

        summary = json.loads((staged / "summary.json").read_text())
        (staged / "README.md").write_text(
            f"{README_TITLE}\n\n"
            "Made by a real run of the native stack on "
            f"{summary['generated_at'][:10]} ({summary['window']['start']} to "
            f"{summary['window']['end']}) with:\n\n"
            f"```sh\n{command}\n```\n\n"
            "It is generated, never edited by hand: run the command again to replace it.\n"
            "[index.html](index.html) and [report.md](report.md) are the report, "
            "summary.json its numbers, run/ the files it was made from.\n")
        # Replaced only now: a failed run leaves the previous sample as it was.
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(staged, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bank_report.sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=int, default=150, help="seconds of load")
    parser.add_argument("--fault-on", type=float, default=20, help="seconds into the run")
    parser.add_argument("--fault-off", type=float, default=120, help="seconds into the run")
    parser.add_argument("--out", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)
    command = shlex.join([".venv/bin/python", "-m", "bank_report.sample",
                          *(argv if argv is not None else sys.argv[1:])])
    out = make_sample(args.users, args.duration, args.fault_on, args.fault_off,
                      args.out.resolve(), command)
    summary = json.loads((out / "summary.json").read_text())
    total = summary["total"]
    print(f"sample report in {out}: {total['requests']} requests, "
          f"{total['requests_per_second']:.2f} req/s, {total['failures']} failures; "
          f"invariants {summary['invariants']['verdict']}; "
          f"alerts fired: {', '.join(summary['alerts_fired']) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
