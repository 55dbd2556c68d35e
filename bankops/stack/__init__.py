"""The stack around the API without Docker, and the stack's secrets.

    python -m bankops.stack up                        the native stack (native.py)
    python3 bankops/stack/stack_secrets.py check      check a compose .env's settings

stack_secrets.py is standard library only (compose runs it in a stock python image), so
nothing is imported here: importing it must not need the rest of the package's dependencies.
"""
