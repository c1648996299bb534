import re

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


# Debezium's and PostgreSQL's errors that mean the slot's WAL is gone (case-insensitive).
SLOT_LOST = re.compile(r"no longer available|replication slot \S+ does not exist|has been invalidated"
                       r"|can no longer get changes from replication slot|requested wal segment \S+ has already"
                       r"|saved offset is before|wal_status lost", re.IGNORECASE)
RECOVER_HINT = "the replication slot is lost: run `cdclake recover` (resets offsets, re-snapshots, drops gap deletes)"


def slot_lost_hint(text: str) -> str | None:
    """``RECOVER_HINT`` when an error text means the slot's WAL is gone, else None."""
    return RECOVER_HINT if SLOT_LOST.search(text) else None
