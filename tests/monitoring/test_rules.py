"""The shipped Prometheus alert rules are valid and fire as their unit tests say (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool from Debian's prometheus package, installed through `cdclake setup`'s path."""
    from cdclake.install.setup import ensure_promtool

    ensure_promtool(progress=lambda m: None)
    return shutil.which("promtool")


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=RULES, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_rules_are_valid(promtool):
    assert "SUCCESS: 15 rules found" in _run([promtool, "check", "rules", "alerts.yml"])


def test_rules_fire_on_failures_and_stay_quiet_when_healthy(promtool):
    assert "SUCCESS" in _run([promtool, "test", "rules", "alerts.test.yml"])


def test_example_prometheus_config_is_valid(promtool):
    assert "SUCCESS" in _run([promtool, "check", "config", "prometheus.yml"])


def test_rules_and_dashboard_only_use_metrics_the_exporter_defines():
    import json
    import re

    import cdclake.monitoring.exporter as exporter

    defined = set(re.findall(r'"(cdclake_[a-z_]+)"', Path(exporter.__file__).read_text()))
    dashboard = json.loads((RULES / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set(re.findall(r"cdclake_[a-z_]+", (RULES / "alerts.yml").read_text() + " ".join(exprs)))
    assert used and used <= defined, used - defined
