"""Amazon RDS / Aurora PostgreSQL: the parameters logical decoding needs there.

On RDS the server settings live in a DB parameter group, not postgresql.conf:
``rds.logical_replication=1`` turns on ``wal_level=logical`` (a static parameter: it
applies at the next reboot), and ``ALTER SYSTEM`` is refused. The one table below feeds
both the Terraform parameter group (``cdclake deploy render``) and the fix that
``cdclake source init`` prints.
"""

from __future__ import annotations

import re

from cdclake.config import Pipeline

LOGICAL_REPLICATION = "rds.logical_replication"
REPLICATION_ROLE = "rds_replication"
SIZE = re.compile(r"^\s*(\d+)\s*(kB|MB|GB|TB)?\s*$", re.IGNORECASE)
MB_PER_UNIT = {"kb": 1 / 1024, "mb": 1, "gb": 1024, "tb": 1024 * 1024}


def size_mb(value: str) -> int:
    """``10GB`` -> 10240: PostgreSQL's size syntax in the MB unit RDS parameters take.

    Raises:
        ValueError: not a PostgreSQL size.
    """
    match = SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a PostgreSQL size such as 10GB or 512MB")
    return int(int(match.group(1)) * MB_PER_UNIT[(match.group(2) or "MB").lower()])


def parameters(pipeline: Pipeline) -> dict[str, str]:
    """The parameter-group values of the source: logical replication, slots, senders, WAL cap."""
    return {
        LOGICAL_REPLICATION: "1",
        "max_replication_slots": "10",
        "max_wal_senders": "10",
        "max_slot_wal_keep_size": str(size_mb(pipeline.source.max_slot_wal_keep_size)),
    }


def parameter_group_command(values: dict[str, str], group: str = "<your-parameter-group>") -> str:
    """The AWS CLI call that sets ``values`` in a parameter group (applied at the next reboot)."""
    params = " ".join(f"ParameterName={k},ParameterValue={v},ApplyMethod=pending-reboot"
                      for k, v in sorted(values.items()))
    return (f"aws rds modify-db-parameter-group --db-parameter-group-name {group} --parameters {params}"
            " && aws rds reboot-db-instance --db-instance-identifier <your-instance>")
