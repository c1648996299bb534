from cdclake.errors import CdclakeError, ExitCode


class ConfigError(CdclakeError):
    """pipeline.yaml (or an override) is malformed, incomplete or unsafe."""

    exit_code = ExitCode.CONFIG

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None):
        super().__init__(message)
        self.path = path
        self.key = key
