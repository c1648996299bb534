"""Progress of a long step in one line: done of total, the rate, and an ETA.

Example:
    >>> Meter("load", 6000, "changes", start=0.0).line(1200, now=6.0)
    'load: 1200/6000 changes (20%), 200/s, ETA 24s'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Meter:
    """Counts ``unit``s of a step towards ``total`` (0: unknown) since ``start``.

    ``per_second`` shows the rate (rows, changes); a count of tables shows only the ETA.
    """

    label: str
    total: int
    unit: str
    start: float = field(default_factory=time.monotonic)
    per_second: bool = True

    def line(self, done: int, detail: str = "", now: float | None = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: {done}/{self.total or '?'} {self.unit}"
        if self.total:
            text += f" ({done / self.total:.0%})"
        if self.per_second:
            text += f", {rate:.0f}/s"
        if self.total and rate and done < self.total:
            text += f", ETA {(self.total - done) / rate:.0f}s"
        return f"{text}: {detail}" if detail else text
