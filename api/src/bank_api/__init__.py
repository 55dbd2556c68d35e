"""A small, real banking API on PostgreSQL, instrumented for Prometheus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bank-api")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
