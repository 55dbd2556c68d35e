"""`bank`: the stack from a terminal, beside the dashboards (a console script of this project).

    bank stat [ROUTE]   how the service is doing now: per route, per process, the database
                        pool, the service level objectives; --watch, --since 15m
    bank trace ID       one request's story: its spans as a waterfall, their SQL, events and
                        errors, then its log lines

Every number comes from Prometheus' HTTP API (PromQL), every span from Tempo's and every log
line from Loki's. The native stack answers the same two look-ups in Tempo's and Loki's shapes
(bankops/otlp_receiver.py, bankops/stack/log_query.py), so there is one code path:

    backends.py         HTTP with clear errors: which service, where, what to do
    prometheus.py       instant and range queries
    service_stats.py    the PromQL of `stat` and the snapshot it reads
    stat_view.py        the snapshot as tables and sparklines (rich)
    tempo.py            a trace by id, decoded with OpenTelemetry's own protobuf classes
    loki.py             the API's log lines that carry a given id
    request_story.py    an id (trace or request) to its spans and lines, or why there are none
    trace_view.py       the story as a waterfall and a log
    cli.py              the commands (click)
"""
