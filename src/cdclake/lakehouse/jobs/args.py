"""Glue-style job arguments: ``--KEY value`` pairs, read with awsglue when it is there.

AWS Glue passes its own arguments too (``--JOB_NAME``, ``--job-bookmark-option``, ...);
only the keys a job asks for are read, the others are ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def resolved_options(argv: list[str], keys: list[str], defaults: dict[str, str] | None = None) -> dict[str, str]:
    """``{key: value}`` for ``keys`` from ``--key value`` pairs (Glue's getResolvedOptions shape).

    Raises:
        SystemExit: a required key (one without a default) is missing.
    """
    try:
        from awsglue.utils import getResolvedOptions  # on AWS Glue
    except ImportError:
        getResolvedOptions = None  # noqa: N806
    defaults = defaults or {}
    required = [k for k in keys if k not in defaults]
    if getResolvedOptions is not None:
        present = [k for k in keys if f"--{k}" in argv]
        return {**defaults, **getResolvedOptions(argv, sorted(set(required) | set(present)))}
    values = dict(defaults)
    for i, token in enumerate(argv):
        if token.startswith("--") and token[2:] in keys:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                sys.exit(f"argument {token} needs a value")
            values[token[2:]] = argv[i + 1]
        elif token.startswith("--") and "=" in token and token[2:].split("=", 1)[0] in keys:
            key, value = token[2:].split("=", 1)
            values[key] = value
    missing = [k for k in keys if k not in values]
    if missing:
        sys.exit(f"missing job argument(s): {', '.join('--' + k for k in missing)}")
    return values


def run_job(argv: list[str] | None, defaults: dict[str, str], body: Callable[[dict[str, str]], None]) -> int:
    """Read ``--config`` and the job's Glue-style arguments, then run ``body(args)``.

    Returns the exit code: 0, or a CdclakeError's code after printing it as one line.
    """
    from cdclake.errors import CdclakeError

    args = resolved_options(argv if argv is not None else sys.argv, ["config", *defaults], defaults)
    try:
        body(args)
    except CdclakeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0
