"""``python -m bench.lakehouse``: see bench/lakehouse/run.py."""

from bench.lakehouse.run import main

main()
