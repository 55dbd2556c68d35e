"""Python's cyclic garbage collector, set for a server that allocates a lot per request.

A request allocates thousands of small containers (the ASGI messages, the validated models,
the rows, a log record, a span) and nearly all are freed, by reference counting, when it
ends. With the default first-generation threshold (700 allocations) the collector still runs
several times a request, each time walking the objects of the requests in flight; and every
full collection walks everything loaded at start-up too: the framework, SQLAlchemy, and with
tracing on the OpenTelemetry SDK and its exporter, a hundred thousand objects or more.

Two standard settings, once the app has started (in every worker):
- `gc.freeze()` moves what start-up made to a permanent generation the collector skips
  (the gc module's documentation suggests it for long-running servers);
- a first-generation threshold of GEN0_THRESHOLD: a collection every few requests rather
  than several per request. Cycles are still collected, a little later; the objects waiting
  are a few megabytes at most.
Measured side by side (a credit, one worker): +15 % throughput, and more with tracing on,
whose objects made collections longer (bankops/bench/PROFILE.md).
"""

import gc

GEN0_THRESHOLD = 10_000


def tune() -> None:
    gc.collect()  # start-up's garbage is not frozen with it
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
