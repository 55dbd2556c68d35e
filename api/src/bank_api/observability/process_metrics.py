"""process_* metrics summed over the API's worker processes.

In multiprocess mode prometheus_client cannot report process metrics (each worker only knows
itself), so the scrape reads them for the uvicorn supervisor and all its workers with psutil.
"""

import os

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class WorkerProcessesCollector:
    def __init__(self, workers: set[int]) -> None:
        self.workers = workers

    def collect(self):
        supervisor = psutil.Process(os.getppid())
        processes = [supervisor, *supervisor.children()]
        cpu = rss = fds = 0.0
        started = min(p.create_time() for p in processes)
        for process in processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    cpu += times.user + times.system
                    rss += process.memory_info().rss
                    fds += process.num_fds()
            except psutil.NoSuchProcess:
                continue
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
                                value=len(self.workers))
