"""The benchmark: the API against pgbench running its SQL, a bare FastAPI endpoint, and
itself with metrics off (`python -m bankops.bench`; README.md here)."""
