from cdclake.errors import CdclakeError, ExitCode


class BrokerError(CdclakeError):
    """Kafka is unreachable or refused an administrative request."""

    exit_code = ExitCode.BROKER

    def __init__(self, message: str, *, bootstrap: str | None = None, topic: str | None = None):
        super().__init__(message)
        self.bootstrap = bootstrap
        self.topic = topic
