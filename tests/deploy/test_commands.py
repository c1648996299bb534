"""The deploy and cost verbs end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cdclake.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def test_deploy_render_writes_tfvars_and_lists_what_to_provide(tmp_path):
    out = tmp_path / "aws"
    result = CliRunner().invoke(cli, ["-c", str(ROOT / "pipeline.yaml"), "deploy", "render", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}/terraform.tfvars.json" in result.output
    assert "kafka_2.13-4.3.0.tgz before terraform apply" in result.output
    assert json.loads((out / "terraform.tfvars.json").read_text())["name"] == "cdclake"


def test_cost_json_has_lines_and_totals():
    result = CliRunner().invoke(cli, ["-c", str(ROOT / "pipeline.yaml"), "--output", "json", "cost"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {line["component"] for line in data["lines"]} >= {"brokers", "storage", "transfer", "debezium", "glue"}
    assert data["total"]["self_managed"] > 0
