"""The run ledger: every job run and the last verify result, kept under the state directory.

The lakehouse jobs (``cdclake run``, the Airflow tasks, which call the same runner) append
one line per layer run to ``<state dir>/runs/jobs.jsonl``; ``cdclake verify`` writes its
last result to ``<state dir>/runs/verify.json``. The metrics exporter, ``status`` and the
dashboard read them, so "did the last silver run fail, and how long did it take?" has an
answer without reading logs. Recording never fails a job: a ledger that cannot be written
is reported once on stderr and the job goes on.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> record_job(d, JobRun("silver", started=100.0, seconds=2.5, failures={}))
    >>> tally(d)["silver"]["runs"]
    {'ok': 1, 'failed': 0}
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KEEP_LINES = 2000  # the ledger is cut back to this many runs when it doubles


@dataclass(frozen=True)
class JobRun:
    """One run of one layer: ``failures`` maps a table (or ``gold``) to its one-line reason."""

    job: str
    started: float
    seconds: float
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return "failed" if self.failures else "ok"


def ledger_dir(state_dir: Path) -> Path:
    return state_dir / "runs"


def record_job(state_dir: Path, run: JobRun) -> None:
    """Append ``run`` to the ledger (locked: the Airflow tasks may run side by side)."""
    path = ledger_dir(state_dir) / "jobs.jsonl"
    line = json.dumps({**asdict(run), "outcome": run.outcome}) + "\n"
    _guarded(path, lambda: _append(path, line))


def record_verify(state_dir: Path, result: dict[str, Any], at: float) -> None:
    """Merge a verify result (``VerifyReport.as_dict()``) into the last result per table and model."""
    path = ledger_dir(state_dir) / "verify.json"

    def write() -> None:
        kept = last_verify(state_dir) or {"tables": {}, "gold": {}}
        for section, name in (("tables", "table"), ("gold", "model")):
            for entry in result.get(section, []):
                kept[section][entry[name]] = {**entry, "at": at}
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(kept, default=str))
        os.replace(scratch, path)  # a reader never sees half a file

    _guarded(path, write)


def job_runs(state_dir: Path) -> list[dict[str, Any]]:
    """Every run in the ledger, oldest first; unreadable lines are skipped."""
    path = ledger_dir(state_dir) / "jobs.jsonl"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    runs = []
    for line in lines:
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash mid-write
    return runs


def tally(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Per job: run counts by outcome, and the last run's time, duration, outcome and failures."""
    out: dict[str, dict[str, Any]] = {}
    for run in job_runs(state_dir):
        entry = out.setdefault(run["job"], {"runs": {"ok": 0, "failed": 0}, "last_success": None})
        entry["runs"][run["outcome"]] += 1
        entry["last"] = {k: run[k] for k in ("started", "seconds", "outcome", "failures")}
        if run["outcome"] == "ok":
            entry["last_success"] = run["started"] + run["seconds"]
    return out


def last_verify(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((ledger_dir(state_dir) / "verify.json").read_text())
    except (OSError, ValueError):
        return None


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(line)
        handle.flush()
        handle.seek(0)
        lines = handle.readlines()
        if len(lines) > 2 * KEEP_LINES:
            handle.seek(0)
            handle.truncate()
            handle.writelines(lines[-KEEP_LINES:])


def _guarded(path: Path, write) -> None:
    try:
        write()
    except OSError as exc:
        print(f"cdclake: could not record the run in {path}: {exc}", file=sys.stderr)
