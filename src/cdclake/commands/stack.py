"""``cdclake up | down | status``."""

from __future__ import annotations

import sys
import time

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.command()
@click.option("--kafka-nodes", type=click.Choice(["1", "3"]), default=None,
              help="managed Kafka: one node, or the reference's three-node quorum  [default: kafka.nodes]")
@pass_ctx
def up(ctx: Context, kafka_nodes: str | None) -> None:
    """Start the local stack: PostgreSQL, Kafka (KRaft), Kafka Connect + Debezium."""
    from cdclake.stack.stack import up as start_stack

    pipeline = ctx.pipeline(**{"kafka.nodes": int(kafka_nodes) if kafka_nodes else None})
    report = start_stack(pipeline, progress=ctx.progress)
    ctx.emit(report.__dict__, _render_up)


def _render_up(report: dict) -> str:
    lines = []
    if report["started"]:
        lines.append("started: " + ", ".join(f"{n} ({report['seconds'][n]}s)" for n in report["started"]))
    if report["already_running"]:
        lines.append("already running: " + ", ".join(report["already_running"]))
    if report["external"]:
        lines.append("external (not managed): " + ", ".join(report["external"]))
    return "\n".join(lines) or "nothing to start"


@cli.command()
@click.option("--purge", is_flag=True, help="also delete the data, logs and local secrets (.cdclake/)")
@pass_ctx
def down(ctx: Context, purge: bool) -> None:
    """Stop exactly what `up` started: gracefully, then by force after a timeout."""
    from cdclake.stack.stack import down as stop_stack

    report = stop_stack(_pipeline_without_tables(ctx), purge=purge, progress=ctx.progress)
    ctx.emit(report.__dict__, lambda r: ("stopped: " + ", ".join(r["stopped"]) if r["stopped"]
                                         else "nothing was running") + (" (data deleted)" if r["purged"] else ""))


def _pipeline_without_tables(ctx: Context):
    """The pipeline for `down`, which needs no table: a bad source.tables must not keep the stack running."""
    from cdclake.config import ConfigError

    try:
        return ctx.pipeline()
    except ConfigError as exc:
        if not (exc.key or "").startswith("source.tables"):
            raise
        ctx.progress(f"warning: {exc} (ignored: down needs no table)")
        return ctx.pipeline(**{"source.tables": []})


@cli.command()
@click.option("--watch", type=float, default=None, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C")
@pass_ctx
def status(ctx: Context, watch: float | None) -> None:
    """Report each component and every layer of every table; exit non-zero when unhealthy.

    Exit codes (docs/operations.md): 0 healthy, 10 freshness past objective, 11 connector/task
    not RUNNING or slot lost/inactive, 12 a component down.
    """
    from cdclake.health.layers import full_status, render_layers
    from cdclake.health.verdict import exit_code

    pipeline = ctx.pipeline()
    while True:
        report = full_status(pipeline)
        if watch:
            click.clear()
        ctx.emit(report, lambda r: render_status(r) + "\n" + render_layers(r))
        if not watch:
            sys.exit(int(exit_code(report)))
        time.sleep(watch)


def render_status(status: dict) -> str:
    lines = []
    for name, part in status.items():
        if name in ("layers", "endpoints", "runs"):  # rendered by render_layers
            continue
        address = part.get("dsn") or part.get("bootstrap_servers") or part.get("url") or ""
        head = f"{name:<10} {part.get('state', '?'):<5} {address}"
        if part.get("version"):
            head += f"  (v{part['version']})"
        lines.append(head)
        for key, value in part.items():
            if key in ("state", "dsn", "bootstrap_servers", "url", "version", "managed"):
                continue
            lines.append(f"{'':<11}{key}: {_flat(value)}")
    return "\n".join(lines)


def _flat(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return "; ".join(_flat(v) for v in value) or "none"
    return str(value)
