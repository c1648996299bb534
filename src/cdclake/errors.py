"""The root of every error cdclake raises on purpose, and the one table of exit codes.

The CLI maps a ``CdclakeError`` to one line of text (or JSON) and its ``exit_code``;
anything else is a bug and shows its traceback. Each area has its own code, so a script
can tell a bad config from a failed verification (README.md, "Exit codes").
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of ``cdclake`` and the job scripts: one per area (like pytest's ExitCode)."""

    OK = 0
    INTERNAL = 1  # a bug: the traceback is shown
    CONFIG = 2  # pipeline.yaml, an override, or a table name
    NOT_INSTALLED = 3  # an engine or optional dependency is missing (cdclake setup)
    STACK = 4  # the local stack could not start, stop or be reached
    BROKER = 5  # Kafka refused or is unreachable
    LAKEHOUSE = 6  # a bronze, silver or gold job failed
    CAPTURE = 7  # the Debezium connector or Kafka Connect
    QUERY = 8  # cdclake sql
    SOURCE = 9  # the PostgreSQL source is unreachable or not fit for capture
    STREAM = 10  # the stream processor
    VERIFY = 11  # silver or gold differs from the source
    HEALTH = 12  # a health check before the jobs failed
    ORCHESTRATION = 13  # a DAG job or the local Airflow
    USAGE = 64  # a bad command line (click's usage errors; sysexits EX_USAGE)
    INTERRUPTED = 130  # Ctrl-C


class CdclakeError(Exception):
    """A problem the user can act on. The message names what is wrong and the fix."""

    exit_code = ExitCode.INTERNAL


class NotInstalledError(CdclakeError):
    """An optional dependency or an engine is missing."""

    exit_code = ExitCode.NOT_INSTALLED
