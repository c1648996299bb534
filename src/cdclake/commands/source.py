"""``cdclake source init`` and ``cdclake load``."""

from __future__ import annotations

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.group()
def source() -> None:
    """The PostgreSQL source."""


@source.command("init")
@click.option("--demo", is_flag=True, help="also create the cdc_demo tables and seed them")
@click.option("--seed", type=int, default=42, show_default=True, help="seed for the demo data")
@pass_ctx
def init(ctx: Context, demo: bool, seed: int) -> None:
    """Prepare the source for capture: settings check, role, publication, heartbeat/signal tables."""
    from cdclake.source.prepare import init_source

    pipeline = ctx.pipeline()
    if demo:
        from cdclake.source.demo import create_demo

        ctx.progress(f"demo data: {create_demo(pipeline, seed=seed)}")
    report = init_source(pipeline, progress=ctx.progress)
    ctx.emit(report.__dict__, lambda r: f"source {r['database']} ready: publication {r['publication']} over "
                                        f"{', '.join(r['tables'])}; capture role {r['capture_user']}")


@cli.command()
@click.option("--rate", type=float, default=200.0, show_default=True, help="offered load, operations per second")
@click.option("--duration", type=float, default=None, help="seconds to run")
@click.option("--ops", type=int, default=None, help="operations to run (instead of --duration)")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--durable", is_flag=True, help="synchronous_commit=on: every commit waits for its WAL flush")
@pass_ctx
def load(ctx: Context, rate: float, duration: float | None, ops: int | None, seed: int, durable: bool) -> None:
    """Run the demo workload: inserts, updates and deletes at a target rate (open loop)."""
    from cdclake.source.workload import Workload

    if duration is None and ops is None:
        duration = 30.0
    result = Workload(ctx.pipeline(), seed=seed, durable=durable).run(rate=rate, duration=duration, ops=ops, progress=ctx.progress)
    ctx.emit(result.summary(), lambda r: (f"{r['ops']} ops in {r['seconds']:.1f}s: {r['achieved_rate']:.0f} ops/s "
                                          f"achieved of {r['target_rate']:.0f} offered; {r['transactions']} "
                                          f"transactions, max lag {r['max_lag_s']:.2f}s"))
