"""The dashboard and the exporter as daemons of the ``up``ed stack (``monitoring.serve``).

Each runs as ``cdclake -c <pipeline.yaml> dashboard|metrics serve`` in the background
with a pid file beside the other daemons', so ``cdclake down`` stops it first (it reads
the rest of the stack) and ``status`` lists its URL like a foreground one.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Callable

from cdclake.config import Pipeline
from cdclake.stack.process import Daemon


def daemons(pipeline: Pipeline) -> list[tuple[Daemon, Callable[[], bool], str]]:
    """(daemon, readiness probe, what the probe waits for) for the dashboard and the exporter."""
    mon = pipeline.monitoring
    served = (("dashboard", ["dashboard"], mon.dashboard_port, "/api/status"),
              ("metrics", ["metrics", "serve"], mon.metrics_port, "/metrics"))
    out = []
    for name, verb, port, path in served:
        daemon = Daemon(
            name=f"monitoring-{name}",
            argv=[sys.executable, "-m", "cdclake", "-c", str(pipeline.path.resolve()), *verb, "--port", str(port)],
            log=pipeline.state_dir / "logs" / f"monitoring-{name}.log",
            pidfile=pipeline.state_dir / "run" / f"monitoring-{name}.pid",
            ports=[port],
        )
        url = f"http://127.0.0.1:{port}{path}"
        out.append((daemon, lambda u=url: _answers(u), f"GET {url}"))
    return out


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status == 200
    except OSError:
        return False
