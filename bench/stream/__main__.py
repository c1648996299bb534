"""``python -m bench.stream``: see bench/stream/run.py."""

from bench.stream.run import main

main()
