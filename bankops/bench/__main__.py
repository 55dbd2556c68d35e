"""`python -m bankops.bench [--quick]`: the benchmark (run.py)."""

import sys

from bankops.bench.run import main

sys.exit(main())
