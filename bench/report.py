"""The benchmark report: every figure against its baseline and target, as markdown and JSON.

``bench/results/latest.json`` is a list of objects ``{name, value, unit, baseline,
baseline_value, ratio, target, met}``, one per target of the performance issue, so a
script can check them; ``bench/results/<UTC time>.md`` is the same as a table. A figure
that was not measured in the run is listed with ``value`` null and ``met`` false, never
left out.

Example:
    >>> f = Figure("capture_rate", 36000, "changes/s", "pg_recvlogical", 160000, "ratio >= 0.7")
    >>> f.ratio, f.met
    (0.225, False)
"""

from __future__ import annotations

import json
import operator
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import plots

RESULTS = Path(__file__).resolve().parent / "results"
OPERATORS = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Figure:
    """One measured figure. ``target`` reads ``ratio >= 0.7`` or ``value <= 10``."""

    name: str
    value: float | None
    unit: str
    baseline: str | None
    baseline_value: float | None
    target: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline_value:
            return None
        return round(self.value / self.baseline_value, 3)

    @property
    def met(self) -> bool:
        subject, op, bound = self.target.split()
        measured = self.ratio if subject == "ratio" else self.value
        return measured is not None and OPERATORS[op](measured, float(bound))

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def write(figures: list[Figure], directory: Path = RESULTS, at: float | None = None,
          series: list[dict] | None = None) -> tuple[Path, Path]:
    """Write ``latest.json``, a dated markdown table and, given the freshness run's
    per-second ``series``, its plots (linked from the table); returns the first two paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime(at))
    latest = directory / "latest.json"
    latest.write_text(json.dumps([f.as_dict() for f in figures], indent=1) + "\n")
    images = plots.write(series, directory, stamp) if series else []
    table = directory / f"{stamp}.md"
    table.write_text(markdown(figures, stamp, images))
    return latest, table


def markdown(figures: list[Figure], stamp: str, images: list[Path] = ()) -> str:
    lines = [f"# cdclake benchmarks, {stamp}", "",
             "| figure | value | baseline | ratio | target | met | note |", "|---|---|---|---|---|---|---|"]
    for f in figures:
        value = "not measured" if f.value is None else f"{f.value:,} {f.unit}"
        baseline = f"{f.baseline} {f.baseline_value:,}" if f.baseline and f.baseline_value is not None else "-"
        lines.append(f"| {f.name} | {value} | {baseline} | {f.ratio if f.ratio is not None else '-'} | "
                     f"{f.target} | {'yes' if f.met else 'no'} | {f.note} |")
    lines += [f"\n![{image.stem}]({image.name})" for image in images]
    return "\n".join(lines) + "\n"
