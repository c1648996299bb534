from cdclake.errors import CdclakeError, ExitCode


class SourceError(CdclakeError):
    """The source database is unreachable or not fit for capture."""

    exit_code = ExitCode.SOURCE


class SourceSettingError(SourceError):
    """A server setting (wal_level, ...) must change, with a restart."""

    def __init__(self, message: str, *, settings: dict[str, str]):
        super().__init__(message)
        self.settings = settings


class MissingKeyError(SourceError):
    """Captured tables without a primary key or REPLICA IDENTITY FULL."""

    def __init__(self, message: str, *, tables: list[str]):
        super().__init__(message)
        self.tables = tables


class UnsupportedColumnError(SourceError):
    """Captured columns whose values silver could not carry exactly; each named with its fix."""

    def __init__(self, message: str, *, columns: list[str]):
        super().__init__(message)
        self.columns = columns
