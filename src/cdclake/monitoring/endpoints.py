"""The HTTP endpoints cdclake serves (metrics exporter, dashboard), announced for ``status``.

A serving process writes ``<state dir>/monitoring/<name>.json`` (url and pid) and removes
it on exit; ``running_endpoints`` lists those whose process is alive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cdclake.stream.metrics import _pid_alive


def endpoint_file(state_dir: Path, name: str) -> Path:
    return state_dir / "monitoring" / f"{name}.json"


def announce(state_dir: Path, name: str, url: str) -> Path:
    path = endpoint_file(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    return path


def running_endpoints(state_dir: Path) -> dict[str, str]:
    """``{"metrics": "http://127.0.0.1:9464/metrics"}`` for each live serving process."""
    out = {}
    directory = state_dir / "monitoring"
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(doc.get("pid")):
            out[path.stem] = doc["url"]
    return out


def run_until_interrupted(state_dir: Path, name: str, url: str, server, progress) -> None:
    """Announce ``url`` as ``name``, wait for Ctrl-C / SIGTERM, then withdraw it and stop ``server``."""
    import signal
    import time

    path = announce(state_dir, name, url)
    signal.signal(signal.SIGTERM, _interrupt)
    progress(f"serving {name} on {url} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    finally:
        path.unlink(missing_ok=True)
        server.shutdown()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
