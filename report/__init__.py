"""The load-run report: report/generate.py turns a run folder into HTML, Markdown and charts."""
