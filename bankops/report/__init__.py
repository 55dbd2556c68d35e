"""The load-run report: `python -m bankops.report RUN_DIR` (generate.py) turns a run folder
into HTML, Markdown and charts; `python -m bankops.report.sample` remakes sample/."""
