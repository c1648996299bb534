"""The PostgreSQL source: connections, preparation for logical replication, demo data."""

# One set of workload defaults for `cdclake load` and `cdclake demo` (and the demo data's
# seed); here, not in workload.py, so the CLI shows them without importing psycopg.
DEFAULT_RATE = 200.0
DEFAULT_DURATION = 30.0
DEFAULT_SEED = 42
