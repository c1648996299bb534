from cdclake.errors import CdclakeError, ExitCode


class QueryError(CdclakeError):
    """The SQL failed or names an unknown table or snapshot."""

    exit_code = ExitCode.QUERY
