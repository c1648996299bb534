"""``cdclake deploy render`` and ``cdclake cost``: the AWS deployment from pipeline.yaml."""

from __future__ import annotations

from pathlib import Path

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.group()
def deploy() -> None:
    """Deploy the pipeline to AWS with the Terraform modules in deploy/terraform (docs/aws.md)."""


@deploy.command("render")
@click.option("--target", type=click.Choice(["aws"]), default="aws", show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("build/aws"), show_default=True,
              help="directory of terraform.tfvars.json and the artifacts Terraform uploads")
@pass_ctx
def render(ctx: Context, target: str, out_dir: Path) -> None:
    """Write terraform.tfvars.json, the job scripts and the AWS pipeline.yaml (deterministic)."""
    from cdclake.deploy.render import render as render_aws

    report = render_aws(ctx.pipeline(), out_dir)
    ctx.emit(report.__dict__, _render_report)


def _render_report(report: dict) -> str:
    lines = [f"wrote {report['out_dir']}/{name}" for name in report["files"]]
    lines += [f"provide {report['out_dir']}/{path} before terraform apply (docs/aws.md, step 2)"
              for path in report["to_provide"]]
    return "\n".join(lines)


@cli.command()
@click.option("--prices", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="a price table YAML instead of the bundled one")
@pass_ctx
def cost(ctx: Context, prices: Path | None) -> None:
    """Monthly AWS cost: MSK vs self-managed Kafka, Debezium, Glue, Airflow, each line's arithmetic."""
    from cdclake.deploy.cost import estimate, load_prices, render_table

    pipeline = ctx.pipeline()
    table = load_prices(prices or pipeline.deploy.cost.price_file)
    result = estimate(pipeline, table)
    ctx.emit(result.as_dict(), lambda _: render_table(result))
