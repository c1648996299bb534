"""The root of every error cdclake raises on purpose.

The CLI maps a ``CdclakeError`` to one line of text (or JSON) and its ``exit_code``;
anything else is a bug and shows its traceback.
"""


class CdclakeError(Exception):
    """A problem the user can act on. The message names what is wrong and the fix."""

    exit_code = 1


class NotInstalledError(CdclakeError):
    """An optional dependency or an engine is missing."""

    exit_code = 3
