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

from cdclake.errors import CdclakeError, ExitCode


@dataclass
class Context:
    config_path: Path
    output: str
    debug: bool
    overrides: dict[str, Any]

    def pipeline(self, **overrides: Any):
        from cdclake.config import load

        return load(self.config_path, {**self.overrides, **overrides})

    def plan(self, tables: tuple[str, ...] | list[str] = ()):
        """The lakehouse plan, restricted to ``tables`` (resolved before any engine starts).

        Engine logs go to files under the state dir; ``--debug`` brings them to the console.
        """
        import dataclasses

        from cdclake.lakehouse.configuration import plan_from_pipeline

        plan = plan_from_pipeline(self.pipeline(), list(tables) or None)
        return dataclasses.replace(plan, log_dir=None) if self.debug else plan

    def spark(self, plan, app: str):
        """The Spark session, naming the file its engine logs go to."""
        from cdclake.lakehouse.spark import log_file, session

        spark = session(plan, app)
        if log_file(plan):
            self.progress(f"Spark's logs: {log_file(plan)} (--debug shows them here)")
        return spark

    def progress(self, message: str) -> None:
        """Progress goes to stderr so ``--output json`` stays one document on stdout."""
        click.echo(message, err=True)

    def emit(self, data: Any, render: Callable[[Any], str]) -> None:
        if self.output == "json":
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            click.echo(render(data))


pass_ctx = click.make_pass_decorator(Context)


GLOBAL_VALUE_OPTIONS = ("-c", "--config", "--output")
GLOBAL_FLAGS = ("--debug",)
OUTPUTS = ("text", "json", "csv")


def split_global_options(args: list[str]) -> tuple[list[str], list[str]]:
    """``(global options, the rest)``: ``-c``, ``--output`` and ``--debug`` from anywhere before ``--``."""
    hoisted: list[str] = []
    rest: list[str] = []
    tokens = iter(enumerate(args))
    for i, arg in tokens:
        if arg == "--":
            rest += args[i:]
            break
        if arg in GLOBAL_FLAGS or ("=" in arg and arg.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS[1:]):
            hoisted.append(arg)
        elif arg in GLOBAL_VALUE_OPTIONS and i + 1 < len(args):
            hoisted += [arg, next(tokens)[1]]
        else:
            rest.append(arg)
    return hoisted, rest


def requested(args: list[str]) -> tuple[str, bool]:
    """``(output, debug)`` as asked on the command line, for errors raised before the context exists."""
    hoisted, _ = split_global_options(args)
    output = "text"
    for i, arg in enumerate(hoisted):
        if arg == "--output" and i + 1 < len(hoisted):
            output = hoisted[i + 1]
        elif arg.startswith("--output="):
            output = arg.split("=", 1)[1]
    return output, "--debug" in hoisted


class Cli(click.Group):
    """The root group: global options are taken wherever they stand (``cdclake status --output json``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        hoisted, rest = split_global_options(args)
        return super().parse_args(ctx, hoisted + rest)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-c", "--config", "config_path", default="pipeline.yaml", show_default=True,
              type=click.Path(path_type=Path), help="pipeline config file")
@click.option("--output", type=click.Choice(OUTPUTS), default="text", show_default=True,
              help="text for people, json for machines; csv for `sql` only")
@click.option("--debug", is_flag=True, help="show tracebacks and engine logs")
@click.version_option(package_name="cdclake")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, output: str, debug: bool) -> None:
    """cdclake: PostgreSQL to an Apache Iceberg lakehouse through Debezium and Kafka.

    Global options (-c, --output, --debug) go before or after the command.
    """
    if output == "csv" and ctx.invoked_subcommand != "sql":
        raise click.UsageError("--output csv is for `cdclake sql`; other commands print text or json")
    ctx.obj = Context(config_path=config_path, output=output, debug=debug, overrides={})


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except CdclakeError as exc:
        _report(exc, *requested(sys.argv[1:]))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)


def _report(exc: CdclakeError, output: str, debug: bool) -> None:
    """One line on stderr (and a JSON document on stdout for ``--output json``); the traceback with --debug."""
    if debug:
        traceback.print_exc()
    if output == "json":
        click.echo(json.dumps({"error": type(exc).__name__, "exit_code": int(exc.exit_code), "message": str(exc)}))
    click.echo(f"error: {exc}", err=True)


def _register_commands() -> None:
    """Each module in cdclake.commands adds its verbs; their heavy imports stay inside the verbs."""
    import importlib
    import pkgutil

    import cdclake.commands as commands

    for info in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"cdclake.commands.{info.name}")
    _note_global_options(cli)


GLOBAL_EPILOG = ("Global options, before or after the command: -c/--config PATH (default pipeline.yaml), "
                 "--output text|json (csv for sql), --debug.")


def _note_global_options(group: click.Group) -> None:
    """Every command's --help ends with the global options it also takes."""
    for command in group.commands.values():
        command.epilog = command.epilog or GLOBAL_EPILOG
        if isinstance(command, click.Group):
            _note_global_options(command)


_register_commands()
