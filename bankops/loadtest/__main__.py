"""`python -m bankops.loadtest --host ...`: one load run and its money check (runner.py)."""

import sys

from bankops.loadtest.runner import main

sys.exit(main())
