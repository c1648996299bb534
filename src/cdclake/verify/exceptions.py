"""Errors of ``cdclake verify``."""

from cdclake.errors import CdclakeError


class VerifyError(CdclakeError):
    """Silver or gold differs from the source (exit code 7 so scripts can tell it apart)."""

    exit_code = 7
