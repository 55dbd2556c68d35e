"""The load-run report: `python -m bank_report RUN_DIR` (generate.py) turns a run folder into
HTML, Markdown and charts; `python -m bank_report.sample` remakes report/sample/."""
