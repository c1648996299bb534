"""``cdclake doctor``: the runbook's daily checks and failure scenarios, each with its fix."""

from __future__ import annotations

import sys

from cdclake.cli import Context, cli, pass_ctx


@cli.command()
@pass_ctx
def doctor(ctx: Context) -> None:
    """Walk the daily checks (Kafka, connector, slot, disk, layers); print each problem's fix command.

    Exits 0 when every check passes, 4 otherwise (like the Airflow health checks).
    """
    from cdclake.health.doctor import diagnose, render
    from cdclake.health.pipeline import HealthCheckError

    findings = diagnose(ctx.pipeline())
    ctx.emit([f.as_dict() for f in findings], lambda _: render(findings))
    if not all(f.ok for f in findings):
        sys.exit(HealthCheckError.exit_code)
