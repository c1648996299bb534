from cdclake.errors import CdclakeError, ExitCode


class CaptureError(CdclakeError):
    """The connector could not be applied, or is not healthy."""

    exit_code = ExitCode.CAPTURE


class ConnectError(CaptureError):
    """Kafka Connect refused a request or is unreachable."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class ConnectorInvalidError(CaptureError):
    """Connect's validation rejected the rendered connector config."""

    def __init__(self, message: str, *, errors: list[str]):
        super().__init__(message)
        self.errors = errors
