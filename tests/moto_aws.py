"""An emulated AWS for the glue-backend tests: moto's server (S3 + the Glue Data Catalog)
in this process, on a port derived from CDCLAKE_TEST_PORT_OFFSET.

moto accepts Glue's ``UpdateTable`` ``VersionId`` but does not check it; real Glue rejects a
stale one with ``ConcurrentModificationException``, which is what Iceberg's GlueCatalog
relies on against lost commits. :func:`honour_version_id` adds that check to the emulator.
:class:`Race` runs a rival writer at an exact point of another writer's commit.

Credentials are dummies, for moto only; nothing here reaches AWS.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

MOTO_PORT = 24500 + int(os.environ.get("CDCLAKE_TEST_PORT_OFFSET", "0"))
REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


@dataclass
class EmulatedAWS:
    endpoint: str

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def env(self) -> dict[str, str]:
        """A child process's environment with the dummy credentials; the endpoints come from its config."""
        return {**os.environ, **DUMMY_CREDENTIALS}

    def lakehouse(self, bucket: str, checkpoints: str) -> dict:
        """The ``lakehouse:`` keys of a glue pipeline on this emulator (catalog ``glue``)."""
        return {"backend": "glue", "catalog": "glue", "warehouse": f"s3://{bucket}/iceberg", "aws_region": REGION,
                "glue_endpoint": self.endpoint, "s3_endpoint": self.endpoint, "s3_path_style_access": True,
                "checkpoints": checkpoints}


def start(port: int = MOTO_PORT):
    """moto's ThreadedMotoServer on 127.0.0.1:``port``, with Glue's VersionId check; returns (server, aws)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    honour_version_id()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, EmulatedAWS(f"http://127.0.0.1:{port}")


def honour_version_id() -> None:
    """Make moto's UpdateTable refuse a stale ``VersionId``, as Glue does (idempotent)."""
    from moto.glue.exceptions import GlueClientError
    from moto.glue.responses import GlueResponse

    if getattr(GlueResponse.update_table, "checks_version_id", False):
        return
    original = GlueResponse.update_table

    def update_table(self):
        RACE.before("UpdateTable")
        expected = self.parameters.get("VersionId")
        if expected is not None:
            table = self.glue_backend.get_table(self.parameters["DatabaseName"], self.parameters["TableInput"]["Name"])
            if str(table._current_version) != str(expected):
                raise GlueClientError("ConcurrentModificationException",
                                      f"Update table failed due to concurrent modifications (version {expected} "
                                      f"is not the current {table._current_version})")
        return original(self)

    update_table.checks_version_id = True
    GlueResponse.update_table = update_table
    _hook_metadata_writes()


def _hook_metadata_writes() -> None:
    from moto.s3.models import S3Backend

    original = S3Backend.put_object

    def put_object(self, bucket_name, key_name, *args, **kwargs):
        if key_name.endswith(".metadata.json"):
            RACE.before("PutMetadata")
        return original(self, bucket_name, key_name, *args, **kwargs)

    S3Backend.put_object = put_object


@dataclass
class Race:
    """A rival commit, run once, just before the emulator serves ``point`` for the writer under test.

    Points: ``PutMetadata`` (the writer has written its new metadata.json and is about to read
    Glue's current metadata location: Iceberg's location check must catch the rival) and
    ``UpdateTable`` (the writer has passed that check and swaps the pointer: only Glue's
    VersionId check can catch the rival).
    """

    point: str | None = None
    rival: Callable[[], None] | None = None
    ran: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def arm(self, point: str, rival: Callable[[], None]) -> None:
        self.point, self.rival, self.error = point, rival, None
        self.ran.clear()

    def before(self, point: str) -> None:
        if self.point != point or self.rival is None:
            return
        rival, self.rival, self.point = self.rival, None, None  # disarm first: the rival commits too
        try:
            rival()
        except BaseException as exc:  # reported by the test, not swallowed by moto's handler
            self.error = exc
        finally:
            self.ran.set()


RACE = Race()
