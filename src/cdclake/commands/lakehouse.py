"""``cdclake run | rebuild | maintain | sql | verify``: the lakehouse verbs."""

from __future__ import annotations

import click

from cdclake.cli import Context, cli, pass_ctx

TABLE_HELP = "only this source table: schema.table, or table for public (repeatable)"


@cli.command()
@click.argument("layer", type=click.Choice(["bronze", "silver", "gold", "all"]))
@click.option("--continuous", is_flag=True, help="keep streaming with lakehouse.trigger_interval_seconds")
@click.option("--available-now", is_flag=True, help="drain what Kafka holds now, then stop (the default)")
@click.option("-t", "--table", "tables", multiple=True, help=TABLE_HELP)
@click.option("-s", "--select", "select", multiple=True,
              help="only this gold model (repeatable); +MODEL adds its ancestors, MODEL+ its descendants")
@pass_ctx
def run(ctx: Context, layer: str, continuous: bool, available_now: bool, tables: tuple[str, ...],
        select: tuple[str, ...]) -> None:
    """Run the bronze, silver and gold jobs (all: in that order)."""
    from cdclake.lakehouse import gold, runner

    if continuous and available_now:
        raise click.UsageError("give --continuous or --available-now, not both")
    if select and (continuous or layer not in ("gold", "all")):
        raise click.UsageError("--select picks gold models: use it with `run gold` or `run all` (not --continuous)")
    plan = ctx.plan(tables)
    if select:
        gold.load_project(plan).select(select)  # a bad selector fails before Spark starts
    spark = ctx.spark(plan, f"cdclake-{layer}")
    layers = runner.layers_for(layer)
    if continuous:
        report = runner.run_continuous(spark, plan, layers, progress=ctx.progress)
    else:
        report = runner.run(spark, plan, layers, progress=ctx.progress, select=select)
    ctx.emit(_run_summary(report), _render_run)
    report.raise_on_failure()


def _run_summary(report) -> dict:
    return {"layers": report.layers, "bronze": report.bronze,
            "silver": [r.__dict__ for r in report.silver], "gold": [r.__dict__ for r in report.gold],
            "failures": report.failures}


def _render_run(summary: dict) -> str:
    merged = sum(r["changes"] for r in summary["silver"])
    rebuilt = [g["model"] for g in summary["gold"] if g["rebuilt"]]
    lines = [f"layers: {', '.join(summary['layers'])}"]
    if summary["silver"]:
        lines.append(f"silver: {merged} key(s) merged over {len(summary['silver'])} table(s)")
    if summary["gold"]:
        lines.append(f"gold: rebuilt {', '.join(rebuilt) or 'nothing (inputs unchanged)'}")
    lines += [f"FAILED {name}: {reason}" for name, reason in summary["failures"].items()]
    return "\n".join(lines)


@cli.group()
def rebuild() -> None:
    """Rebuild a layer's table from the layer below."""


@rebuild.command("silver")
@click.argument("table")
@pass_ctx
def rebuild_silver(ctx: Context, table: str) -> None:
    """Drop the silver table of source TABLE (schema.table, or table for public) and replay it from bronze."""
    from cdclake.lakehouse import silver

    plan = ctx.plan([table])
    ref = plan.tables[0]
    result = silver.rebuild(ctx.spark(plan, "cdclake-rebuild"), plan, ref)
    ctx.emit(result.__dict__, lambda r: f"rebuilt {ref.silver_short}: {r['changes']} key(s) from bronze "
                                        f"snapshot {r['bronze_snapshot']} in {r['seconds']:.1f}s")


@cli.command()
@click.option("--dry-run", is_flag=True, help="report what would be done, change nothing")
@click.option("-t", "--table", "tables", multiple=True,
              help="only the bronze and silver tables of this source table (repeatable)")
@pass_ctx
def maintain(ctx: Context, dry_run: bool, tables: tuple[str, ...]) -> None:
    """Compact, expire snapshots, remove orphan files, rewrite manifests of every table."""
    from cdclake.lakehouse.maintenance import maintain as run_maintenance

    plan = ctx.plan(tables)
    only = [f"{layer}_{ref.base}" for ref in plan.tables for layer in ("bronze", "silver")] if tables else None
    results = run_maintenance(ctx.spark(plan, "cdclake-maintain"), plan, dry_run=dry_run, progress=ctx.progress,
                              only=only)
    ctx.emit([r.__dict__ for r in results], lambda rs: f"{len(rs)} table(s) {'inspected' if dry_run else 'maintained'}")


@cli.command()
@click.argument("statement")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="duckdb: pyiceberg + DuckDB, no JVM; spark: Spark SQL")
@pass_ctx
def sql(ctx: Context, statement: str, engine: str) -> None:
    """Query the lakehouse: cdclake sql "SELECT * FROM cdc_db.silver_users LIMIT 5".

    Time travel: ... FROM cdc_db.silver_users VERSION AS OF <snapshot id>
    or TIMESTAMP AS OF '2026-01-01 10:00:00' (UTC), on both engines.
    The global --output picks the format: text (an aligned table), json or csv.
    """
    from cdclake.query.engines import run_sql
    from cdclake.query.render import RENDERERS

    result = run_sql(ctx.plan(), statement, engine)
    click.echo(RENDERERS[ctx.output](result))


@cli.command()
@click.argument("table", required=False)
@click.option("--no-gold", is_flag=True, help="check silver only")
@pass_ctx
def verify(ctx: Context, table: str | None, no_gold: bool) -> None:
    """Prove silver == source (counts, per-key hashes) and gold == its SQL on PostgreSQL.

    TABLE (schema.table, or table for public) checks that table only.
    """
    from cdclake.lakehouse.configuration import plan_from_pipeline
    from cdclake.verify.verify import verify as run_verify

    pipeline = ctx.pipeline()
    name = pipeline.source.resolve_table(table) if table else None
    report = run_verify(plan_from_pipeline(pipeline), name, gold=not no_gold,
                        progress=ctx.progress if ctx.output == "json" else click.echo)
    if ctx.output == "json":
        ctx.emit(report.as_dict(), str)
    report.raise_on_difference()
