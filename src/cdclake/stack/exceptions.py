from pathlib import Path

from cdclake.errors import CdclakeError, ExitCode


class StackError(CdclakeError):
    """The local stack could not be started, probed or stopped."""

    exit_code = ExitCode.STACK

    def __init__(self, message: str, *, component: str | None = None, log: Path | None = None):
        super().__init__(message)
        self.component = component
        self.log = log


class PortInUseError(StackError):
    def __init__(self, message: str, *, port: int, component: str):
        super().__init__(message, component=component)
        self.port = port


class ComponentDiedError(StackError):
    """A daemon exited while it was starting."""


class StartTimeoutError(StackError):
    """A daemon did not answer its readiness probe in time."""


class ComponentDownError(StackError):
    """A component the command needs is not reachable."""
