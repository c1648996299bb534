"""PNG plots of a freshness run, second by second: freshness and throughput over time.

The series comes from bench.lakehouse's freshness benchmark (``per_second``): for each
second of load, the rows committed at the source, the rows that became visible in
silver, and the worst commit-to-visible time of the rows committed in that second.
"""

from __future__ import annotations

from pathlib import Path

FRESHNESS_TARGET_S = 10


def write(series: list[dict], directory: Path, stamp: str) -> list[Path]:
    """Write ``<stamp>-freshness.png`` and ``<stamp>-throughput.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to PNG
    from matplotlib import pyplot

    seconds = [p["t"] for p in series]
    freshness, ax = pyplot.subplots(figsize=(8, 3.5))
    ax.plot(seconds, [p["max_lag_s"] for p in series], label="worst row committed in that second")
    ax.axhline(FRESHNESS_TARGET_S, linestyle="--", color="grey", label=f"target {FRESHNESS_TARGET_S} s")
    ax.set(xlabel="seconds of load", ylabel="commit to visible in silver (s)", title="Silver freshness")
    ax.legend(loc="upper left")
    throughput, ax = pyplot.subplots(figsize=(8, 3.5))
    ax.plot(seconds, [p["committed"] for p in series], label="committed at the source")
    ax.step(seconds, [p["visible"] for p in series], where="post", label="made visible in silver")
    ax.set(xlabel="seconds of load", ylabel="rows per second", title="Throughput")
    ax.legend(loc="upper left")
    paths = []
    for name, figure in (("freshness", freshness), ("throughput", throughput)):
        path = directory / f"{stamp}-{name}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        pyplot.close(figure)
        paths.append(path)
    return paths
