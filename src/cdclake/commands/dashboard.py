"""``cdclake dashboard``: the live page for the local stack."""

from __future__ import annotations

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.command()
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True, help="address to listen on")
@pass_ctx
def dashboard(ctx: Context, port: int, address: str) -> None:
    """Serve the dashboard: data path health, per-table lag and freshness per layer, slot WAL."""
    from cdclake.monitoring.dashboard import serve
    from cdclake.monitoring.endpoints import run_until_interrupted

    pipeline = ctx.pipeline()
    server = serve(pipeline, port, address)
    url = f"http://{address}:{server.server_address[1]}/"
    run_until_interrupted(pipeline.state_dir, "dashboard", url, server, ctx.progress)
