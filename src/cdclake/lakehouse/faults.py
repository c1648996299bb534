"""Test-only crash points, so tests can prove exactly-once across ``kill -9``.

A job process started with ``CDCLAKE_FAULT=<point>`` (``bronze.after_commit``,
``silver.mid_merge``, ...) SIGKILLs its JVM and itself when it reaches that point: no
``finally`` block, no shutdown hook, no checkpoint write runs. ``silver.mid_merge:0.5``
fires 0.5 s after the MERGE started, while Spark is writing files. Unset, it costs one
dictionary lookup. (The one place the lakehouse reads the environment: a test seam.)
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

ENV = "CDCLAKE_FAULT"


def _wanted(name: str) -> tuple[bool, float]:
    spec = os.environ.get(ENV, "")
    point, _, delay = spec.partition(":")
    return point == name, float(delay or 0)


def point(name: str, spark: Any = None) -> None:
    """Crash here if the environment asks for it."""
    wanted, delay = _wanted(name)
    if wanted:
        if delay:
            threading.Timer(delay, _crash, (spark,)).start()
        else:
            _crash(spark)


def _crash(spark: Any) -> None:
    if spark is not None:
        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        os.kill(int(pid), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
