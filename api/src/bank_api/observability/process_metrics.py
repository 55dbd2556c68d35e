"""process_* metrics summed over the API's processes: uvicorn's supervisor and its workers.

In multiprocess mode prometheus_client cannot report process metrics (each worker only knows
itself), so the scrape reads them for the supervisor and the live workers with psutil.
"""

import multiprocessing
import os

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class WorkerProcessesCollector:
    def __init__(self, workers: set[int]) -> None:
        """workers: the live workers' pids, from their metric files (mark_dead_workers). Asking
        psutil for the supervisor's children instead reads every process on the machine."""
        self.workers = workers

    def collect(self):
        # uvicorn starts its workers with multiprocessing; a lone process has no supervisor.
        supervisor = os.getppid() if multiprocessing.parent_process() is not None else None
        pids = {os.getpid(), *self.workers} | ({supervisor} if supervisor else set())
        cpu = rss = fds = 0.0
        started = float("inf")
        workers = 0
        for pid in pids:
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    if supervisor and pid != supervisor and process.ppid() != supervisor:
                        continue  # the pid of a dead worker, reused by another process
                    times = process.cpu_times()
                    memory = process.memory_info().rss
                    open_fds = process.num_fds()
                    created = process.create_time()
            except psutil.NoSuchProcess:  # gone, or a zombie not yet reaped
                continue
            cpu += times.user + times.system
            rss += memory
            fds += open_fds
            started = min(started, created)
            workers += pid != supervisor
        yield CounterMetricFamily("process_cpu_seconds", "CPU time of the API's processes",
                                  value=cpu)
        yield GaugeMetricFamily("process_resident_memory_bytes",
                                "Resident memory of the API's processes", value=rss)
        yield GaugeMetricFamily("process_open_fds", "Open file descriptors of the API's processes",
                                value=fds)
        yield GaugeMetricFamily("process_start_time_seconds",
                                "Start time of the API's oldest process (Unix time)",
                                value=started)
        yield GaugeMetricFamily("bank_worker_processes", "Live uvicorn worker processes",
                                value=workers)
