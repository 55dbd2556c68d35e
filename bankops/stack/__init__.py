"""The stack around the API without Docker, and the check of compose's secrets.

    python -m bankops.stack up               the native stack (native.py)
    python3 bankops/stack/env_check.py       refuse a compose .env with placeholder secrets

env_check.py is standard library only (compose runs it in a stock python image), so nothing
is imported here: importing it must not need the rest of the package's dependencies.
"""
