"""``python -m bench.capture``: see bench/capture/run.py."""

from bench.capture.run import main

main()
