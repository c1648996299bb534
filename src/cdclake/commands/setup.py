"""``cdclake setup``: install the engines, idempotently."""

from __future__ import annotations

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.command()
@click.option("--airflow", is_flag=True, help="also install Apache Airflow into .venv-airflow (for `cdclake airflow`)")
@pass_ctx
def setup(ctx: Context, airflow: bool) -> None:
    """Install PostgreSQL (Debian), resolve the pinned JVM engines (Maven) into the cache."""
    from cdclake.install.setup import run_setup

    ctx.emit(run_setup(progress=ctx.progress, airflow=airflow), lambda r: "\n".join(f"{k}: {v}" for k, v in r.items()))
