"""Errors of ``cdclake verify``."""

from cdclake.errors import CdclakeError, ExitCode


class VerifyError(CdclakeError):
    """Silver or gold differs from the source (its own exit code, so scripts can tell it apart)."""

    exit_code = ExitCode.VERIFY
