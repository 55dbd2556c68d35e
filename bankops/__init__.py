"""What stands around the bank API and is neither its load nor its report: the benchmark
(bench/), the native stack (stack/), the one way to start and stop child processes
(processes.py) and the OTLP trace receiver (otlp_receiver.py). The load test and the report
are packages of their own, in loadtest/ and report/."""
