"""Which requests to look up in the API's logs: the slowest and the failed ones, by request id.

Every request a customer sends carries a fresh `X-Request-ID` (customer.py); the API echoes
it and writes it on each of its log lines, so one id finds that request's lines in Loki
(`{service="api"} | json | request_id="…"`) or in the API's stdout.

Locust's failure table stays grouped by a stable reason (`unexpected status 500
(fault_injected)`): one row per request name and reason however many requests fail, and
nothing per request reaches the Prometheus export. The ids are kept here instead, bounded:

- per request name, the SLOWEST_PER_NAME slowest requests (failed or not);
- per request name and failure reason (the failure table's Error column, exactly), how many
  failed and the FAILED_PER_REASON most recent of them;
- at most MAX_NAMES names and MAX_REASONS_PER_NAME reasons per name (further reasons are
  counted under OTHER_REASONS).

Each request kept: request_id, status (0: no answer), response_time_ms, at (UTC, when it was
sent), echoed (the API answered with this X-Request-ID) and failure (None, or the reason).

Where it runs: the `request` event fires in the process whose users sent the request. A
single process (`--headless`, compose's locust-headless, a local run) records directly. In a
distributed run each worker records, then hands what it gathered since its last report to
its stats report (`report_to_master`, every 3 s, and a last one when it stops) and starts
afresh; the master merges those (`worker_report`). The N slowest of the whole run are among
the union of each report's N slowest, so the merge keeps them exactly.

Where it goes: the master (or the single process) writes `<--csv prefix>_request_ids.json`
when Locust quits (`locust_request_ids.json` in the load runner's run folder, and in compose's
./runs), and while it runs its web UI has a "Request IDs" tab and `/request-ids` (JSON).
"""

import heapq
import json
import logging
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from flask import Response, request
from locust import events
from locust.runners import WorkerRunner
from locust.stats import StatsError

HEADER = "X-Request-ID"
SLOWEST_PER_NAME = 10
FAILED_PER_REASON = 5
MAX_NAMES = 200
MAX_REASONS_PER_NAME = 20
OTHER_REASONS = "(other reasons)"
FILE_SUFFIX = "_request_ids.json"
PATH = "/request-ids"
TAB = "request-ids"
REPORT_KEY = "bank_request_ids"  # in a worker's stats report to the master
FORMAT = 1


def failure_reason(exception: BaseException | str | None) -> str | None:
    """The reason as Locust's failure table and locust_failures.csv show it (their Error)."""
    return None if exception is None else StatsError.parse_error(exception)


def _utc(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch if epoch is not None else time.time(), UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


class _Name:
    """What is kept for one request name."""

    def __init__(self, method: str, name: str) -> None:
        self.method, self.name = method, name
        self.slowest: list[tuple[float, str, dict]] = []  # a min-heap: the fastest kept first
        self.failures: dict[str, dict] = {}  # reason -> {"count": n, "recent": deque}

    def keep_if_slow(self, sample: dict) -> None:
        entry = (sample["response_time_ms"], sample["request_id"], sample)
        if len(self.slowest) < SLOWEST_PER_NAME:
            heapq.heappush(self.slowest, entry)
        elif entry[:2] > self.slowest[0][:2]:
            heapq.heapreplace(self.slowest, entry)

    def count_failure(self, reason: str, count: int, samples: list[dict]) -> None:
        if reason not in self.failures and len(self.failures) >= MAX_REASONS_PER_NAME:
            reason = OTHER_REASONS
        kept = self.failures.setdefault(
            reason, {"count": 0, "recent": deque(maxlen=FAILED_PER_REASON)})
        kept["count"] += count
        kept["recent"].extend(samples)

    def to_dict(self) -> dict:
        return {
            "method": self.method, "name": self.name,
            "slowest": [s for *_, s in sorted(self.slowest, key=lambda e: e[:2], reverse=True)],
            "failures": [{"reason": reason, "count": kept["count"],
                          "requests": list(kept["recent"])}
                         for reason, kept in sorted(self.failures.items(),
                                                    key=lambda item: -item[1]["count"])],
        }


class RequestSamples:
    """The slowest and the failed requests per request name, bounded (see the module doc)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.names: dict[tuple[str, str], _Name] = {}
        self.names_dropped = 0  # requests of names beyond MAX_NAMES

    def _name(self, method: str, name: str) -> _Name | None:
        key = (method, name)
        if key not in self.names:
            if len(self.names) >= MAX_NAMES:
                self.names_dropped += 1
                return None
            self.names[key] = _Name(method, name)
        return self.names[key]

    def record(self, method: str, name: str, sample: dict) -> None:
        kept = self._name(method, name)
        if kept is None:
            return
        kept.keep_if_slow(sample)
        if sample["failure"] is not None:
            kept.count_failure(sample["failure"], 1, [sample])

    def merge(self, data: dict | None) -> None:
        """Add what another process gathered (its to_dict())."""
        if not data:
            return
        self.names_dropped += data.get("names_dropped", 0)
        for entry in data["names"]:
            kept = self._name(entry["method"], entry["name"])
            if kept is None:
                continue
            for sample in entry["slowest"]:
                kept.keep_if_slow(sample)
            for failure in entry["failures"]:
                kept.count_failure(failure["reason"], failure["count"], failure["requests"])

    def to_dict(self) -> dict:
        return {"format": FORMAT, "header": HEADER, "slowest_per_name": SLOWEST_PER_NAME,
                "failed_per_reason": FAILED_PER_REASON, "names_dropped": self.names_dropped,
                "names": [kept.to_dict() for kept in self.names.values()]}

    def drain(self) -> dict | None:
        """Everything gathered since the last drain, then start afresh (a worker's report)."""
        if not self.names and not self.names_dropped:
            return None
        data = self.to_dict()
        self.clear()
        return data

    def table_rows(self) -> list[dict]:
        """One row per request kept, for the web UI's "Request IDs" tab: failed ones first."""
        rows = []
        for entry in (kept.to_dict() for kept in self.names.values()):
            for failure in entry["failures"]:
                rows += [{**_row(entry, sample), "kind": f"failed ({failure['count']}): "
                          f"{failure['reason']}"} for sample in reversed(failure["requests"])]
        for entry in (kept.to_dict() for kept in self.names.values()):
            rows += [{**_row(entry, sample), "kind": "slowest"} for sample in entry["slowest"]]
        return rows[:500]  # as Locust truncates its own tables: more would slow the page down


def _row(entry: dict, sample: dict) -> dict:
    return {"name": f"{entry['method']} {entry['name']}", "request_id": sample["request_id"],
            "status": sample["status"], "response_time_ms": sample["response_time_ms"],
            "at": sample["at"]}


SAMPLES = RequestSamples()


@events.request.add_listener
def on_request(request_type, name, response_time, response=None, context=None, exception=None,
               start_time=None, **_kwargs) -> None:
    request_id = (context or {}).get("request_id")
    if request_id is None:  # not sent through BankCustomer.request: no id to look up
        return
    headers = getattr(response, "headers", None)
    SAMPLES.record(request_type, name, {
        "request_id": request_id,
        "status": getattr(response, "status_code", 0) or 0,
        "response_time_ms": round(response_time or 0.0, 1),
        "at": _utc(start_time),
        "echoed": bool(headers) and headers.get(HEADER) == request_id,
        "failure": failure_reason(exception),
    })


@events.report_to_master.add_listener
def on_report_to_master(client_id, data, **_kwargs) -> None:  # on a worker
    gathered = SAMPLES.drain()
    if gathered is not None:
        data[REPORT_KEY] = gathered


@events.worker_report.add_listener
def on_worker_report(client_id, data, **_kwargs) -> None:  # on the master
    SAMPLES.merge(data.get(REPORT_KEY))


@events.reset_stats.add_listener
def on_reset_stats(**_kwargs) -> None:  # the web UI's "reset stats"
    SAMPLES.clear()


def output_path(environment) -> Path | None:
    """Beside Locust's CSV files (`--csv PREFIX`): PREFIX_request_ids.json; None without."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    return Path(prefix + FILE_SUFFIX) if prefix else None


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(SAMPLES.to_dict(), indent=1) + "\n")


def add_web_ui(environment) -> None:
    """/request-ids (JSON), and a "Request IDs" tab beside Failures in the web UI."""
    web_ui = environment.web_ui
    web_ui.template_args["extended_tabs"] = [{"title": "Request IDs", "key": TAB}]
    web_ui.template_args["extended_tables"] = [{"key": TAB, "structure": [
        {"key": "name", "title": "Request"}, {"key": "kind", "title": "Kept as"},
        {"key": "request_id", "title": f"Request id ({HEADER})"},
        {"key": "status", "title": "Status"}, {"key": "response_time_ms", "title": "ms"},
        {"key": "at", "title": "Sent at (UTC)"}]}]

    @web_ui.app.route(PATH)
    def request_ids() -> Response:
        return Response(json.dumps(SAMPLES.to_dict()), content_type="application/json")

    @web_ui.app.after_request
    def add_tab_rows(response: Response) -> Response:
        if request.path == "/stats/requests" and response.is_json:
            response.set_data(json.dumps({**response.get_json(), "extended_stats": [
                {"key": TAB, "data": SAMPLES.table_rows()}]}))
        return response


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # a worker's samples go to the master with its stats reports
    if environment.web_ui is not None:
        add_web_ui(environment)
    path = output_path(environment)
    if path is not None:
        # `quit` fires after the runner has stopped and the workers' last reports are in.
        environment.events.quit.add_listener(lambda **_kw: write_logged(path))


def write_logged(path: Path) -> None:
    try:
        write(path)
    except OSError as exc:  # Locust still writes its own files and exits as it would
        logging.error("could not write the request ids to %s: %s", path, exc)
