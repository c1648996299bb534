"""``cdclake doctor`` without a stack: every check reports the failure with its fix command."""

from __future__ import annotations

from cdclake.config import load
from cdclake.health.doctor import diagnose, disk_finding, render
from tests.conftest import base_config, write_config


def test_doctor_on_a_stopped_stack_names_each_failure_and_its_fix(tmp_path):
    doc = base_config(source={"port": 1, "tables": ["public.users"]}, kafka={"port": 1999},
                      connect={"port": 2})
    pipeline = load(write_config(tmp_path, doc), environ={})
    findings = {f.check: f for f in diagnose(pipeline)}
    assert not findings["kafka"].ok and findings["kafka"].fix.startswith("cdclake up")
    assert not findings["connector"].ok and "cdclake connector apply" in findings["connector"].fix
    assert not findings["slot"].ok and findings["slot"].fix == "cdclake up"
    assert findings["kafka disk"].ok and "GiB free" in findings["kafka disk"].message
    assert not findings["lakehouse"].ok
    assert render(list(findings.values())).endswith("4 problem(s)")


def test_disk_over_threshold_gives_the_retention_command(tmp_path):
    pipeline = load(write_config(tmp_path, base_config()), environ={})
    finding = disk_finding(pipeline, used_max=0.0)
    assert not finding.ok and "--add-config retention.ms=" in finding.fix


def test_a_failed_job_and_a_verify_difference_are_findings_with_their_fix(tmp_path):
    from cdclake.health.doctor import run_findings
    from cdclake.monitoring import runs

    pipeline = load(write_config(tmp_path, base_config()), environ={})
    runs.record_job(pipeline.state_dir, runs.JobRun("bronze", 1.0, 2.0))
    runs.record_job(pipeline.state_dir, runs.JobRun("silver", 1.0, 2.0, {"public.orders": "silver: no such column"}))
    runs.record_verify(pipeline.state_dir, {"tables": [{"table": "public.users", "ok": False}]}, at=3.0)
    findings = {f.check: f for f in run_findings(pipeline)}
    assert findings["bronze job"].ok
    assert not findings["silver job"].ok and "public.orders: silver: no such column" in findings["silver job"].message
    assert findings["silver job"].fix.endswith("cdclake run silver")
    assert not findings["verify public.users"].ok and "rebuild silver public.users" in findings["verify public.users"].fix
