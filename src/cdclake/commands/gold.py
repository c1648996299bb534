"""``cdclake gold ls``: the gold models, their inputs, tests and build order (no Spark)."""

from __future__ import annotations

import click

from cdclake.cli import Context, cli, pass_ctx


@cli.group()
def gold() -> None:
    """The gold models (models_dir/gold/*.sql and their YAML properties)."""


@gold.command("ls")
@click.option("-s", "--select", "select", multiple=True,
              help="only this model (repeatable); +MODEL adds its ancestors, MODEL+ its descendants")
@pass_ctx
def ls(ctx: Context, select: tuple[str, ...]) -> None:
    """List the models in build order: refs, sources, data tests, description; and those that cannot run."""
    from cdclake.lakehouse.gold import load_project

    project = load_project(ctx.plan())
    models = [{"model": m.name, "path": str(m.path), "description": m.description, "refs": m.refs,
               "sources": m.inputs, "tests": [t.label for t in m.tests], "columns": m.columns}
              for m in project.select(select)]
    skipped = {} if select else project.skipped
    ctx.emit({"models": models, "skipped": skipped}, _render)


def _render(listing: dict) -> str:
    lines = []
    for m in listing["models"]:
        reads = [f"ref {r}" for r in m["refs"]] + [f"source {s}" for s in m["sources"]]
        lines.append(f"{m['model']}  <- {', '.join(reads)}")
        if m["description"]:
            lines.append(f"    {m['description']}")
        if m["tests"]:
            lines.append(f"    tests: {', '.join(m['tests'])}")
    lines += [f"{name}  (not run: {why})" for name, why in listing["skipped"].items()]
    return "\n".join(lines) or "no gold models"
