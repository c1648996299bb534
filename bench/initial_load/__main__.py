"""``python -m bench.initial_load``: see bench/initial_load/run.py."""

from bench.initial_load.run import main

main()
