"""The tools around the bank API: load runs and their reports, the benchmark, the native
stack, and the process handling they share. The API itself is its own package (api/)."""
