"""Errors of the deployment renderer and the cost model."""

from __future__ import annotations

from cdclake.errors import CdclakeError


class DeployError(CdclakeError):
    """The config cannot be rendered into a deployment; the message names the key and the fix."""

    exit_code = 2

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
