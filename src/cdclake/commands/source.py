"""``cdclake source init | check | drop`` and ``cdclake load``."""

from __future__ import annotations

import sys

import click

from cdclake.cli import Context, cli, pass_ctx
from cdclake.source import DEFAULT_DURATION, DEFAULT_RATE, DEFAULT_SEED


def seed_option(help: str = "random seed: the same seed gives the same changes"):
    return click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help=help)


def workload_options(command):
    """``--rate``, ``--duration``, ``--seed``: the workload's flags, the same on ``load`` and ``demo``."""
    command = seed_option()(command)
    command = click.option("--duration", type=float, default=DEFAULT_DURATION, show_default=True,
                           help="seconds the workload runs")(command)
    return click.option("--rate", type=float, default=DEFAULT_RATE, show_default=True,
                        help="offered load, row changes per second")(command)


@cli.group()
def source() -> None:
    """The PostgreSQL source."""


@source.command("init")
@click.option("--demo", is_flag=True, help="also create the cdc_demo tables and seed them")
@seed_option("seed for the demo data")
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


@source.command("check")
@pass_ctx
def check(ctx: Context) -> None:
    """Report everything capture needs that the source lacks, each with its fix; changes nothing.

    Exits 0 when ready, else with the source's exit code.
    """
    from cdclake.source.check import SourceNotReadyError, check_source

    report = check_source(ctx.pipeline())
    ctx.emit(report.as_dict(), _render_check)
    if not report.ready:
        error = SourceNotReadyError(report)
        if ctx.output == "json":  # the report stays the one JSON document on stdout
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        raise error


def _render_check(report: dict) -> str:
    missing = sum(not f["ok"] for f in report["findings"])
    state = "ready for capture" if report["ready"] else f"NOT ready: {missing} to fix"
    lines = [f"source {report['database']} as {report['user']} ({report['flavour']}): {state}"]
    for f in report["findings"]:
        lines.append(f"  {'ok ' if f['ok'] else 'FIX'} {f['check']}: {f['detail']}")
        if f["fix"]:
            lines.append(f"      fix ({f['by']}): {f['fix']}")
    return "\n".join(lines)


@source.command("drop")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@pass_ctx
def drop(ctx: Context, yes: bool) -> None:
    """Undo `source init`: drop the slot, publication, capture role, heartbeat and signal tables.

    The captured tables and their rows are not touched. Delete the connector first.
    """
    from cdclake.source.teardown import drop_source

    pipeline = ctx.pipeline()
    if not yes:
        click.confirm(f"drop slot {pipeline.source.slot}, publication {pipeline.source.publication} and role "
                      f"{pipeline.source.capture_user} on {pipeline.source.database}?", abort=True)
    dropped = drop_source(pipeline, progress=ctx.progress)
    ctx.emit({"dropped": dropped}, lambda r: f"dropped {len(r['dropped'])} object(s)" if r["dropped"]
             else "nothing to drop")


@cli.command()
@workload_options
@click.option("--ops", type=int, default=None, help="stop after this many row changes (then --duration only if given)")
@click.option("--durable", is_flag=True, help="synchronous_commit=on: every commit waits for its WAL flush")
@click.pass_context
def load(click_ctx: click.Context, rate: float, duration: float, ops: int | None, seed: int, durable: bool) -> None:
    """Run the demo workload: inserts, updates and deletes at a target rate (open loop)."""
    from click.core import ParameterSource

    from cdclake.source.workload import Workload

    ctx = click_ctx.find_object(Context)
    if ops is not None and click_ctx.get_parameter_source("duration") is ParameterSource.DEFAULT:
        duration = None
    result = Workload(ctx.pipeline(), seed=seed, durable=durable).run(rate=rate, duration=duration, ops=ops,
                                                                      progress=ctx.progress)
    ctx.emit(result.summary(), lambda r: (f"{r['ops']} ops in {r['seconds']:.1f}s: {r['achieved_rate']:.0f} ops/s "
                                          f"achieved of {r['target_rate']:.0f} offered; {r['transactions']} "
                                          f"transactions, max lag {r['max_lag_s']:.2f}s"))
