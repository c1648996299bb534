"""deploy/terraform checked offline: fmt, parse + references, checkov, tflint."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.terraform_refs import load_module, problems, template_problems

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "deploy" / "terraform"
MODULES = ("network", "kafka", "debezium", "glue", "airflow", "query", "source", "service-role")
TOOLS_VENV = ROOT / ".venv-tools" / "bin"


def _tool(name: str, *extra: Path) -> str:
    """The tool from PATH or the places `make tools` puts it; a skip names the install command."""
    for candidate in (shutil.which(name), *(str(p) for p in extra if p.exists())):
        if candidate:
            return candidate
    pytest.skip(f"{name} not found: run `make tools` (see docs/aws.md, 'What is tested offline')")


def test_every_module_has_the_standard_files():
    for module in [*(TERRAFORM_DIR / "modules" / m for m in MODULES), TERRAFORM_DIR]:
        assert {p.name for p in module.glob("*.tf")} >= {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}, module


def test_terraform_fmt_is_clean():
    terraform = _tool("terraform", Path("/usr/local/bin/terraform"))
    result = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"run terraform fmt -recursive deploy/terraform:\n{result.stdout}"


def test_every_reference_resolves():
    assert problems(TERRAFORM_DIR) == []


@pytest.mark.parametrize("module", ["kafka", "airflow"])
def test_user_data_templates_get_exactly_their_variables(module):
    assert template_problems(TERRAFORM_DIR / "modules" / module) == []


def test_template_check_catches_a_missing_variable(tmp_path):
    (tmp_path / "t.tftpl").write_text('echo ${a} ${replace(b, "-", "")} $${not_mine}\n')
    (tmp_path / "main.tf").write_text('x = templatefile("${path.module}/t.tftpl", {\n  a = 1\n  c = 2\n})\n')
    assert template_problems(tmp_path) == [f"{tmp_path.name}/t.tftpl: uses b, not passed",
                                           f"{tmp_path.name}/t.tftpl: c is passed but unused"]


def test_the_resolver_catches_broken_references(tmp_path):
    child = tmp_path / "child"
    child.mkdir()
    (child / "variables.tf").write_text('variable "a" {\n  type = string\n}\n')
    (child / "outputs.tf").write_text('output "x" {\n  value = var.b\n}\n')
    (tmp_path / "main.tf").write_text('module "c" {\n  source = "./child"\n  z = 1\n}\n'
                                      'output "y" {\n  value = module.c.nope\n}\n')
    assert sorted(problems(tmp_path)) == [
        "child: var.b is not declared",
        f"{tmp_path.name}: module c misses required a",
        f"{tmp_path.name}: module c passes undeclared z",
        f"{tmp_path.name}: module.c.nope is not an output",
    ]


def test_security_groups_open_only_the_reference_ports_from_the_vpc():
    text = (TERRAFORM_DIR / "modules" / "network" / "main.tf").read_text()
    assert "ports = [9092, 9093]" in text and "ports = [8083]" in text
    network = load_module(TERRAFORM_DIR / "modules" / "network")
    assert "aws_vpc_security_group_ingress_rule.vpc" in network.resources
    ingress = text.split('resource "aws_vpc_security_group_ingress_rule" "vpc"', 1)[1].split("\n}\n", 1)[0]
    assert "cidr_ipv4         = aws_vpc.this.cidr_block" in ingress and "0.0.0.0/0" not in ingress


def test_no_literal_password_in_the_task_definition():
    text = (TERRAFORM_DIR / "modules" / "debezium" / "main.tf").read_text()
    assert "valueFrom = var.db_password_secret_arn" in text
    assert "password" not in text.lower().split("container_definitions", 1)[1].split("secrets", 1)[0]


def test_checkov_has_no_failed_checks():
    checkov = _tool("checkov", TOOLS_VENV / "checkov")
    result = subprocess.run([checkov, "-d", str(TERRAFORM_DIR), "--framework", "terraform", "--compact",
                             "--quiet", "--skip-download", "--output", "cli"],
                            capture_output=True, text=True, timeout=110,
                            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout


def test_every_checkov_skip_is_justified():
    for tf in TERRAFORM_DIR.rglob("*.tf"):
        for line in tf.read_text().splitlines():
            if "checkov:skip=" in line:
                check, _, reason = line.split("checkov:skip=", 1)[1].partition(":")
                assert check.startswith("CKV") and len(reason.strip()) > 20, f"{tf}: {line.strip()}"


def test_tflint_terraform_ruleset_is_clean():
    tflint = _tool("tflint", Path.home() / "go" / "bin" / "tflint")
    result = subprocess.run([tflint, "--recursive", "--config", str(TERRAFORM_DIR / ".tflint.hcl")],
                            capture_output=True, text=True, timeout=110, cwd=TERRAFORM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
