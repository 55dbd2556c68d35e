"""`python -m bank_report RUN_DIR [--prometheus URL]`: a load run's report (generate.py)."""

import sys

from bank_report.generate import main

sys.exit(main())
