"""`python -m bankops.stack up`: the native stack (see bankops/stack/native.py)."""

import sys

from bankops.stack.native import main

sys.exit(main())
