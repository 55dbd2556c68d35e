"""The trace sink for the API with logs and traces on: bankops.otlp_receiver's OtlpReceiver
(OTLP/HTTP protobuf, decoded with opentelemetry-proto, as a collector does first) in a process
of its own, so its CPU is measured apart from the API's and the benchmark's, as the collector
(Alloy) is a process apart in the compose stack.

    python -m bankops.bench.trace_sink --port 8440 --stats <work-dir>/trace-sink.json

It keeps no spans, only counts: spans and traces in all, and per root span (the server span,
named after the route, e.g. `POST /transfers`) the traces and the spans they held. The counts
go to --stats (JSON, replaced atomically) twice a second and on SIGTERM; `TraceSink` is the
benchmark's side: start, stop, read the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from bankops.otlp_receiver import OtlpReceiver, Span
from bankops.processes import LOOPBACK, Service

WRITE_SECONDS = 0.5
NO_ROOT = "(no root span received)"


class CountingReceiver(OtlpReceiver):
    """Counts spans per trace until the trace's root span arrives (a server span ends last,
    so it comes in the same export as its children or a later one), then adds the trace to
    its root's name."""

    def __init__(self, port: int) -> None:
        super().__init__(port, keep=1)
        self.open: dict[str, int] = {}  # trace id -> spans received before its root
        self.by_root: dict[str, dict[str, int]] = {}
        self.traces = 0

    def _add(self, spans: list[Span]) -> None:
        with self._lock:
            self.count += len(spans)
            for span in spans:
                self.open[span.trace_id] = self.open.get(span.trace_id, 0) + 1
            for span in spans:
                if not span.parent_span_id:
                    root = self.by_root.setdefault(span.name, {"traces": 0, "spans": 0})
                    root["traces"] += 1
                    root["spans"] += self.open.pop(span.trace_id, 1)
                    self.traces += 1

    def stats(self) -> dict:
        with self._lock:
            by_root = {name: dict(counts) for name, counts in self.by_root.items()}
            if self.open:
                by_root[NO_ROOT] = {"traces": len(self.open), "spans": sum(self.open.values())}
            return {"spans": self.count, "traces": self.traces, "by_root": by_root}


def _write(path: Path, stats: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(stats))
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bankops.bench.trace_sink",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args(argv)
    receiver = CountingReceiver(args.port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"OTLP/HTTP trace sink on {receiver.endpoint}", flush=True)
    written = None
    while True:
        stopping = stop.wait(WRITE_SECONDS)
        stats = receiver.stats()
        if stats != written:
            _write(args.stats, stats)
            written = stats
        if stopping:
            break
    receiver.stop()
    print(f"received {stats['spans']} spans in {stats['traces']} traces", flush=True)
    return 0


class TraceSink:
    """The sink as a bankops.processes.Service: `with TraceSink(port, work_dir) as sink:`,
    `sink.endpoint` for OTEL_EXPORTER_OTLP_ENDPOINT, `sink.stats()` for the counts so far
    (at most WRITE_SECONDS old), `sink.pid` for CPU metering."""

    def __init__(self, port: int, work_dir: Path) -> None:
        self.port = port
        self.stats_path = work_dir / f"trace-sink-{port}.json"
        self.argv = [sys.executable, "-m", "bankops.bench.trace_sink", "--port", str(port),
                     "--stats", str(self.stats_path)]
        self.service = Service(f"trace-sink-{port}", self.argv,
                               log_path=work_dir / "logs" / f"trace-sink-{port}.log",
                               cwd=work_dir, timeout=30)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.service.pid is not None, "the trace sink is not running"
        return self.service.pid

    def start(self) -> TraceSink:
        self.stats_path.unlink(missing_ok=True)
        self.service.start()
        deadline = time.monotonic() + 30
        while not self.stats_path.exists():  # written once it listens
            if not self.service.running() or time.monotonic() > deadline:
                self.service.stop()
                raise RuntimeError(f"the trace sink did not start:\n{self.service.log_tail()}")
            time.sleep(0.05)
        return self

    def stats(self) -> dict:
        return json.loads(self.stats_path.read_text())

    def stop(self) -> dict:
        """Stop it (it writes its last counts first) and return the final counts."""
        self.service.stop()
        return self.stats()

    def __enter__(self) -> TraceSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.service.stop()


if __name__ == "__main__":
    sys.exit(main())
