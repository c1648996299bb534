from cdclake.errors import CdclakeError


class QueryError(CdclakeError):
    """The SQL failed or names an unknown table or snapshot."""

    exit_code = 8
