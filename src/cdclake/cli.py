"""The ``cdclake`` command: one sub-command per verb.

The CLI is the edge: it resolves the config once and passes typed objects down. Domain
errors become one line and an exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cdclake.errors import CdclakeError


@dataclass
class Context:
    config_path: Path
    output: str
    debug: bool
    overrides: dict[str, Any]

    def pipeline(self, **overrides: Any):
        from cdclake.config import load

        return load(self.config_path, {**self.overrides, **overrides})

    def progress(self, message: str) -> None:
        """Progress goes to stderr so ``--output json`` stays one document on stdout."""
        click.echo(message, err=True)

    def emit(self, data: Any, render: Callable[[Any], str]) -> None:
        if self.output == "json":
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            click.echo(render(data))


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-c", "--config", "config_path", default="pipeline.yaml", show_default=True,
              type=click.Path(path_type=Path), help="pipeline config file")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--debug", is_flag=True, help="show tracebacks")
@click.version_option(package_name="cdclake")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, output: str, debug: bool) -> None:
    """cdclake: PostgreSQL to an Apache Iceberg lakehouse through Debezium and Kafka."""
    ctx.obj = Context(config_path=config_path, output=output, debug=debug, overrides={})


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CdclakeError as exc:
        if "--debug" in sys.argv:
            traceback.print_exc()
        if "--output" in sys.argv and "json" in sys.argv:
            click.echo(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def _register_commands() -> None:
    """Each module in cdclake.commands adds its verbs; their heavy imports stay inside the verbs."""
    import importlib
    import pkgutil

    import cdclake.commands as commands

    for info in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"cdclake.commands.{info.name}")


_register_commands()
