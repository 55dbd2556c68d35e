"""`python -m bank_loadtest --host ...`: one load run and its money check (runner.py)."""

import sys

from bank_loadtest.runner import main

sys.exit(main())
