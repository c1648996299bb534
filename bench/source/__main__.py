"""``python -m bench.source``: see bench/source/run.py."""

from bench.source.run import main

main()
