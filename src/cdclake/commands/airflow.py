"""``cdclake airflow up | down | status``: a local Apache Airflow 3 running our DAGs."""

from __future__ import annotations

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.group()
def airflow() -> None:
    """Run the pipeline's Airflow DAGs locally (docs/airflow.md)."""


@airflow.command()
@pass_ctx
def up(ctx: Context) -> None:
    """Start Airflow (api-server, scheduler, dag-processor) with our DAGs; print the URL and login."""
    from cdclake.orchestration.server import up as start

    report = start(ctx.pipeline(), progress=ctx.progress)
    ctx.emit(report.__dict__, _render_up)


def _render_up(report: dict) -> str:
    lines = [f"started: {', '.join(report['started'])}" if report["started"] else "already running"]
    lines += [f"Airflow UI: {report['url']}", f"login: {report['user']} / {report['password']}",
              f"DAGs from {report['dags_folder']}: self_managed_cdc_pipeline, iceberg_maintenance "
              "(paused: unpause them in the UI)"]
    return "\n".join(lines)


@airflow.command()
@pass_ctx
def down(ctx: Context) -> None:
    """Stop the local Airflow (the stack keeps running)."""
    from cdclake.orchestration.server import down as stop

    stopped = stop(ctx.pipeline(), progress=ctx.progress)
    ctx.emit({"stopped": stopped}, lambda r: "stopped: " + ", ".join(r["stopped"]) if r["stopped"]
             else "Airflow was not running")


@airflow.command()
@pass_ctx
def status(ctx: Context) -> None:
    """State of each Airflow daemon, and Airflow's health report."""
    from cdclake.orchestration.server import status as airflow_status

    ctx.emit(airflow_status(ctx.pipeline()), lambda s: "\n".join(f"{k}: {v}" for k, v in s.items()))

