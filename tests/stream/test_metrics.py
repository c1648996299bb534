"""Metrics files and the `cdclake status` entry."""

import os
import time

from cdclake.config import load
from cdclake.stream import metrics
from tests.conftest import base_config, write_config


def doc(instance: str, pid: int, **extra) -> dict:
    return {"instance": instance, "pid": pid, "group_id": "g", "guarantee": "at-least-once", "state": "running",
            "updated_at": time.time(), "interval_s": 2, "assigned": ["cdc.u[0]"], "lag": {"total": 3},
            "tables": {"departments": 4},
            "steps": {"cdc.u": [{"step": "1:filter", "in": 10, "out": 7, "filtered": 3, "failed": 0}]}, **extra}


def test_status_is_off_or_down_without_a_running_processor(tmp_path):
    pipeline = load(write_config(tmp_path, base_config()), environ={})
    assert metrics.stream_status(pipeline) == {"enabled": False, "state": "off"}
    pipeline = load(write_config(tmp_path, base_config(stream={"enabled": True, "inputs": [{"topic": "cdc.u"}]})),
                    environ={})
    metrics.write(metrics.metrics_dir(pipeline.state_dir) / "gone.json", doc("gone", 999_999_999))
    status = metrics.stream_status(pipeline)
    assert status["state"] == "down" and "cdclake stream" in status["error"]


def test_status_sums_live_instances(tmp_path):
    directory = tmp_path / "stream"
    metrics.write(directory / "a.json", doc("a", os.getpid()))
    metrics.write(directory / "b.json", doc("b", os.getpid()))
    metrics.write(directory / "old.json", {**doc("old", os.getpid()), "updated_at": time.time() - 600})
    (directory / "broken.json").write_text("{")
    status = metrics.summarize(True, metrics.read_all(directory))
    assert status["state"] == "up" and status["consumer_lag"] == 6
    assert status["steps"] == ["cdc.u 1:filter: in=20 out=14 filtered=6 failed=0"]
    assert status["tables"] == ["departments: 4 rows"]
    assert len(status["instances"]) == 2
