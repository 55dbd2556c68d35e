"""prometheus_client multiprocess mode, for WEB_CONCURRENCY > 1.

Each uvicorn worker is its own process with its own counters. In multiprocess mode every
metric is written to files in PROMETHEUS_MULTIPROC_DIR and a scrape, answered by whichever
worker receives it, adds up the files of all workers. The directory must be emptied before
the workers start (old files would be counted again), and a dead worker's live gauges must be
dropped (else its in-flight requests and pool connections would be counted forever).
"""

import os
import re
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def prepare(workers: int) -> Path | None:
    """Called once in the parent process before workers start: an empty directory, or None
    when one process serves everything (plain in-memory metrics then)."""
    if workers <= 1 and not enabled():
        return None
    directory = Path(os.environ.get(ENV) or tempfile.mkdtemp(prefix="bank-api-metrics-"))
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    os.environ[ENV] = str(directory)
    return directory


def _worker_pids() -> set[int]:
    """Every worker that wrote a live gauge: all of them, since each sets its pool size."""
    return {int(m.group(1)) for name in os.listdir(os.environ[ENV])
            if (m := _LIVE_GAUGE_FILE.match(name))}


def mark_dead_workers() -> set[int]:
    """Drop the live gauges of workers that no longer run (crashed or replaced); return the
    pids of the live ones."""
    from prometheus_client import multiprocess

    live = set()
    for pid in _worker_pids():
        if _alive(pid):
            live.add(pid)
        else:
            multiprocess.mark_process_dead(pid, os.environ[ENV])
    return live


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
