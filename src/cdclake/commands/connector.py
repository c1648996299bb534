"""``cdclake connector apply|status|restart|pause|resume|delete|snapshot``."""

from __future__ import annotations

import json

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.group()
def connector() -> None:
    """The Debezium connector on Kafka Connect."""


@connector.command()
@click.option("--dry-run", is_flag=True, help="print the rendered config (no secrets in it) and stop")
@pass_ctx
def apply(ctx: Context, dry_run: bool) -> None:
    """Create the topics and PUT the connector config (idempotent); wait until RUNNING."""
    from cdclake.capture import service
    from cdclake.capture.connector import connector_config

    pipeline = ctx.pipeline()
    if dry_run:
        click.echo(json.dumps(connector_config(pipeline), indent=2))
        return
    result = service.apply(pipeline, progress=ctx.progress)
    ctx.emit(result, lambda r: f"connector {r['connector']} RUNNING" + ("" if r["changed"] else " (unchanged)"))


@connector.command()
@pass_ctx
def status(ctx: Context) -> None:
    """Connector and task states, the replication slot, topic end offsets."""
    from cdclake.capture import service
    from cdclake.commands.stack import render_status

    ctx.emit(service.connector_status(ctx.pipeline()), lambda s: render_status({"connector": s}))


def _simple(verb: str, doc: str):
    @connector.command(name=verb, help=doc)
    @pass_ctx
    def command(ctx: Context) -> None:
        from cdclake.capture import service

        pipeline = ctx.pipeline()
        getattr(service.client(pipeline), verb)(pipeline.connect.connector_name)
        ctx.emit({"connector": pipeline.connect.connector_name, "done": verb}, lambda r: f"{verb}: {r['connector']}")

    return command


for _verb, _doc in (("restart", "Restart the connector and its tasks."), ("pause", "Pause the connector."),
                    ("resume", "Resume a paused connector."),
                    ("delete", "Delete the connector (its slot stays; drop it in PostgreSQL if wanted).")):
    _simple(_verb, _doc)


@connector.command()
@click.argument("table")
@click.option("--parallel", is_flag=True, help="read the rows in parallel chunks at one exported snapshot "
                                                "straight into bronze (docs/lakehouse.md, \"Parallel initial load\")")
@pass_ctx
def snapshot(ctx: Context, table: str, parallel: bool) -> None:
    """Re-snapshot one TABLE (schema.table, or table for public) through the signal table.

    A table with a key is snapshotted incrementally while streaming goes on; a keyless one is
    loaded again whole by a blocking snapshot (docs/lakehouse.md, "Tables without a key")."""
    from cdclake.capture import service

    signal = service.snapshot_table(ctx.pipeline(), table, progress=ctx.progress, parallel=parallel)
    ctx.emit({"table": table, "signal": signal}, lambda r: f"snapshot of {r['table']} requested ({r['signal']})")
