"""``cdclake metrics serve | show``: cdclake's own Prometheus metrics."""

from __future__ import annotations

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.group()
def metrics() -> None:
    """cdclake's Prometheus exporter: slot WAL, connector states, per-table layer freshness and lag."""


@metrics.command("serve")
@click.option("--port", type=int, default=None, help="default: monitoring.metrics_port (9464)")
@click.option("--address", default="127.0.0.1", show_default=True, help="address to listen on")
@pass_ctx
def serve_metrics(ctx: Context, port: int | None, address: str) -> None:
    """Serve /metrics until Ctrl-C; every scrape reads the live state."""
    from cdclake.monitoring.endpoints import run_until_interrupted
    from cdclake.monitoring.exporter import serve

    pipeline = ctx.pipeline()
    server = serve(pipeline, port or pipeline.monitoring.metrics_port, address)
    url = f"http://{address}:{server.server_port}/metrics"
    run_until_interrupted(pipeline.state_dir, "metrics", url, server, ctx.progress)


@metrics.command("show")
@pass_ctx
def show_metrics(ctx: Context) -> None:
    """Print one scrape in the Prometheus text format."""
    from prometheus_client import generate_latest

    from cdclake.monitoring.exporter import registry

    click.echo(generate_latest(registry(ctx.pipeline())).decode(), nl=False)
