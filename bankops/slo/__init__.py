"""Service level objectives: slos.yml, the one place they are written, becomes slo-rules.yml,
the recording rules and burn-rate alerts Prometheus loads (`python -m bankops.slo`).

spec.py reads and checks slos.yml; rules.py writes the rules. docs/slos.md explains the
objectives, the windows and the compression of time in the demo.
"""
