"""Errors of the stream-processing layer."""

from __future__ import annotations

from cdclake.errors import CdclakeError, ExitCode


class StreamError(CdclakeError):
    """The stream processor cannot run: bad setup, broker refused, fatal client error."""

    exit_code = ExitCode.STREAM

    def __init__(self, message: str, *, topic: str | None = None):
        super().__init__(message)
        self.topic = topic


class HookError(StreamError):
    """A hook named in the config cannot be imported."""

    def __init__(self, message: str, *, hook: str):
        super().__init__(message)
        self.hook = hook


class StepFailedError(StreamError):
    """One event failed in one step; the event goes to the dead-letter topic."""

    def __init__(self, step: str, cause: BaseException):
        super().__init__(f"step {step} failed: {type(cause).__name__}: {cause}")
        self.step = step
        self.cause = cause
