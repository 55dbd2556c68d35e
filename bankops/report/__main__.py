"""`python -m bankops.report RUN_DIR [--prometheus URL]`: a load run's report (generate.py)."""

import sys

from bankops.report.generate import main

sys.exit(main())
