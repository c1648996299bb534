"""``cdclake setup``: install the engines, idempotently."""

from __future__ import annotations

from cdclake.cli import Context, cli, pass_ctx


@cli.command()
@pass_ctx
def setup(ctx: Context) -> None:
    """Install PostgreSQL (Debian), resolve the pinned JVM engines (Maven) into the cache."""
    from cdclake.install.setup import run_setup

    ctx.emit(run_setup(progress=ctx.progress), lambda r: "\n".join(f"{k}: {v}" for k, v in r.items()))
