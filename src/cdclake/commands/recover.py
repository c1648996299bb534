"""``cdclake recover``: the one command to run when the replication slot is lost."""

from __future__ import annotations

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.command()
@click.option("--dry-run", is_flag=True, help="only report whether the slot is lost, and why")
@pass_ctx
def recover(ctx: Context, dry_run: bool) -> None:
    """Recover from a lost replication slot: reset offsets, re-snapshot, silver drops gap deletes.

    A no-op when the slot is healthy; safe to rerun after a failure at any step.
    """
    from cdclake.capture.recover import recover as run

    ctx.emit(run(ctx.pipeline(), dry_run=dry_run, progress=ctx.progress), lambda r: _render(r, dry_run))


def _render(result: dict, dry_run: bool) -> str:
    if not result["lost"]:
        return f"slot {result['slot']} healthy: nothing to recover"
    if dry_run:
        return f"slot {result['slot']} lost ({'; '.join(result['reasons'])}); run `cdclake recover` to recover"
    return (f"recovered connector {result['connector']}: {len(result['tables'])} table(s) re-snapshotted; "
            "run bronze then silver (`cdclake run bronze`, `cdclake run silver`)")
