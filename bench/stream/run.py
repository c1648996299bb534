"""Benchmark: events/s through filter + enrich, against a plain consume→produce loop.

Both run in the same process, on the same Kafka, over the same input topic (one group
each), so the ratio says what the stream layer costs on top of moving bytes. Timing
starts at the first consumed event (group join excluded) and stops when the last input
event is processed and its output flushed/committed. "Per core" divides by the CPU
seconds the process used (user + system, librdkafka's threads included).

Usage:
    .venv/bin/python -m bench.stream -c pipeline.yaml [--events 200000] [--guarantee at-least-once]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import threading
import time
import uuid
from dataclasses import dataclass

from cdclake.broker import clients
from cdclake.broker.topics import ensure_topics
from cdclake.config import load
from cdclake.stream import codec
from cdclake.stream.configuration import StreamConfig
from cdclake.stream.processor import Processor
from cdclake.stream.steps import IN

DEPARTMENTS = 20


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def per_core(self) -> float:
        return self.events / self.cpu_seconds

    def line(self) -> str:
        return (f"{self.name:<22} {self.events:>8} events  {self.seconds:7.2f}s  {self.rate:>9.0f} events/s  "
                f"{self.per_core:>9.0f} events/s per core (cpu {self.cpu_seconds:.2f}s)")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def user_event(i: int, rng: random.Random) -> dict:
    return {"id": i, "name": f"user {i}", "email": f"user{i}@example.com", "created_at": 1714557600000000 + i,
            "is_active": True, "department_id": rng.randint(1, DEPARTMENTS), "bio": None, "profile": None,
            "tags": ["a", "b"], "__op": "c" if rng.random() < 0.8 else "u", "__lsn": 10_000 + i,
            "__txId": 700 + i, "__source_ts_ms": 1714557600000 + i, "__ts_ms": 1714557600100 + i,
            "__table": "users", "__schema": "public", "__deleted": "false"}


def seed(bootstrap: str, users: str, departments: str, events: int, partitions: int) -> None:
    ensure_topics(bootstrap, [users, departments], partitions, 1)
    producer = clients.producer(bootstrap, **{"linger.ms": 20, "partitioner": "murmur2_random"})
    for d in range(1, DEPARTMENTS + 1):
        producer.produce(departments, json.dumps({"id": d, "name": f"dept {d}", "budget": "1000.00", "__op": "r"}),
                         json.dumps({"id": d}))
    rng = random.Random(7)
    for i in range(events):
        while True:
            try:
                producer.produce(users, json.dumps(user_event(i, rng)), json.dumps({"id": i}))
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)


def plain_loop(bootstrap: str, source: str, target: str, events: int, batch: int) -> Result:
    """The baseline: consume, produce the same bytes with the same key, commit every second."""
    ensure_topics(bootstrap, [target], 3, 1)
    consumer = clients.consumer(bootstrap, f"bench-plain-{uuid.uuid4().hex[:6]}")
    producer = clients.producer(bootstrap, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                              "partitioner": "murmur2_random"})
    consumer.subscribe([source])
    seen, start, cpu0, next_commit = 0, None, 0.0, 0.0
    while seen < events:
        msgs = consumer.consume(batch, timeout=0.2)
        if msgs and start is None:
            start, cpu0 = time.monotonic(), cpu_seconds()
            next_commit = start + 1
        for msg in msgs:
            if msg.error():
                continue
            while True:
                try:
                    producer.produce(target, msg.value(), msg.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            seen += 1
        producer.poll(0)
        if msgs and time.monotonic() >= next_commit:
            producer.flush()
            consumer.commit(asynchronous=False)
            next_commit = time.monotonic() + 1
    if producer.flush(60):
        raise SystemExit("plain loop: events not delivered within 60s")
    consumer.commit(asynchronous=False)
    result = Result("plain consume→produce", seen, time.monotonic() - start, cpu_seconds() - cpu0)
    consumer.close()
    return result


def stream_run(bootstrap: str, users: str, departments: str, events: int, guarantee: str, batch: int,
               partitions: int) -> Result:
    tag = uuid.uuid4().hex[:6]
    config = StreamConfig.model_validate({
        "enabled": True, "group_id": f"bench-stream-{tag}", "processing_guarantee": guarantee, "batch_size": batch,
        "dead_letter_topic": f"bench.dlq.{tag}", "output_prefix": f"bench-out-{tag}",
        "tables": {"departments": {"topic": departments}},
        "inputs": [{"topic": users, "steps": [
            {"filter": {"op": ["c"]}},
            {"enrich": {"table": "departments", "key": "department_id", "fields": ["name"],
                        "prefix": "department_"}}]}]})
    processor = Processor(config, bootstrap, partitions=partitions, replication_factor=1, metrics_dir=None,
                          instance_id=f"bench-{tag}")
    worker = threading.Thread(target=processor.run, daemon=True)
    worker.start()
    counted = lambda: processor.chains[users].counters[0][IN] if users in processor.chains else 0  # noqa: E731
    while counted() == 0:
        time.sleep(0.001)
    start, cpu0 = time.monotonic(), cpu_seconds()
    while counted() < events:
        time.sleep(0.002)
    processor.stop()
    worker.join()  # includes the final flush and commit
    return Result("stream filter+enrich", counted(), time.monotonic() - start, cpu_seconds() - cpu0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="pipeline.yaml", help="pipeline.yaml of a running stack")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternate plain and stream runs; report medians")
    parser.add_argument("--guarantee", choices=["at-least-once", "exactly-once"], default="at-least-once")
    args = parser.parse_args(argv)
    pipeline = load(args.config)
    bootstrap, partitions = pipeline.kafka.bootstrap, pipeline.kafka.partitions
    tag = uuid.uuid4().hex[:6]
    users, departments = f"bench.users.{tag}", f"bench.departments.{tag}"
    print(f"seeding {args.events} user events and {DEPARTMENTS} departments into {users} ({partitions} partitions)")
    seed(bootstrap, users, departments, args.events, partitions)
    plain, stream = [], []
    for round_ in range(args.rounds):
        plain.append(plain_loop(bootstrap, users, f"bench.plain.{tag}", args.events, args.batch))
        stream.append(stream_run(bootstrap, users, departments, args.events, args.guarantee, args.batch,
                                 partitions))
        print(f"round {round_ + 1}:\n  {plain[-1].line()}\n  {stream[-1].line()}")
    best_plain, best_stream = median(plain), median(stream)
    print(f"median of {args.rounds} ({args.guarantee}, msgspec {'on' if codec.msgspec else 'off'}, "
          f"{os.cpu_count()} cores):")
    print(f"  {best_plain.line()}\n  {best_stream.line()}")
    print(f"ratio stream/plain: {best_stream.rate / best_plain.rate:.2f} (events/s), "
          f"{best_stream.per_core / best_plain.per_core:.2f} (per core); target >= 0.70")


def median(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.rate)[len(results) // 2]


if __name__ == "__main__":
    main()
