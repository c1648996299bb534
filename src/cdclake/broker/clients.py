"""confluent-kafka clients configured one way for all of cdclake.

librdkafka logs go to the ``cdclake.kafka`` Python logger instead of stderr, so a broker
that is down yields one clear error, not a page of connection-refused lines.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

LOG = logging.getLogger("cdclake.kafka")


def admin(bootstrap: str, **conf: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000, **conf}, logger=LOG)


def producer(bootstrap: str, **conf: Any) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, **conf}, logger=LOG)


def consumer(bootstrap: str, group_id: str, **conf: Any) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, **conf}, logger=LOG)
