"""Silver equals the source for what real databases hold and do: Debezium replays after a
crash (no deleted key comes back), TRUNCATE, tables added to capture later (or removed and
added back), unconstrained numerics, char(n), and one unreadable table among readable ones. Each test compares silver with PostgreSQL itself, then runs
``verify``."""

from __future__ import annotations

import threading
import time

import pytest
from psycopg import sql

from cdclake.broker import clients
from cdclake.lakehouse import runner, silver
from cdclake.lakehouse.configuration import plan_from_pipeline
from cdclake.source import connection
from cdclake.verify.verify import verify
from tests.conftest import unique
from tests.lakehouse.conftest import lake_pipeline, silver_rows, source_rows, start_capture, wait_records

pytestmark = pytest.mark.integration
QUIET = lambda message: None  # noqa: E731


def new_capture(stack, cleanup, prefix: str, ddl: dict[str, str], rows: dict[str, str],
                keys: dict[str, list[str]] | None = None, setup: str = "", types: str = "",
                adjust=None, before_capture=None):
    """A schema of its own with ``types`` created, ``ddl`` tables and ``rows`` inserted (then
    ``setup`` run), captured; ``keys`` are source.key_columns by table, ``adjust`` changes the
    pipeline, ``before_capture(pipeline)`` runs just before the capture starts. Returns (pipeline, plan)."""
    tag = unique(prefix)
    pipeline = lake_pipeline(stack, tag, list(ddl))
    pipeline = adjust(pipeline) if adjust else pipeline
    if keys:
        source = pipeline.source.model_copy(update={"key_columns": {f"{tag}.{t}": c for t, c in keys.items()}})
        pipeline = pipeline.model_copy(update={"source": source})
    cleanup(pipeline)
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tag)))
        conn.execute(f"SET search_path = {tag}")
        if types:
            conn.execute(types)
        for table, columns in ddl.items():
            conn.execute(f"CREATE TABLE {table} ({columns})")
        for table, select in rows.items():
            conn.execute(f"INSERT INTO {table} {select}")
        if setup:
            conn.execute(setup)
    if before_capture:
        before_capture(pipeline)
    start_capture(pipeline)
    return pipeline, plan_from_pipeline(pipeline)


def execute(pipeline, statement: str) -> None:
    with connection.connect(pipeline, autocommit=True) as conn:
        conn.execute(statement)


def run_layers(spark, plan) -> None:
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    assert not report.failures, report.failures


def assert_verified(plan) -> None:
    report = verify(plan, gold=False, progress=QUIET)
    assert report.ok, report.as_dict()


def topic_records(bootstrap: str, topic: str, count: int) -> list:
    """The first ``count`` records of ``topic`` as (partition, key, value) bytes, in offset order."""
    consumer = clients.consumer(bootstrap, unique("replay"))
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + 120  # a time bound, not a batch count: a count capped the records read
    try:
        while len(records) < count and time.monotonic() < deadline:
            records += [m for m in consumer.consume(1000, 0.5) if not m.error()]
    finally:
        consumer.close()
    assert len(records) >= count, f"{topic}: read {len(records)} of {count} records"
    return [(m.partition(), m.key(), m.value()) for m in sorted(records, key=lambda m: (m.partition(), m.offset()))]


def replay(bootstrap: str, topic: str, records: list) -> None:
    """Send records again, to their partitions: what Debezium does after a Connect crash."""
    producer = clients.producer(bootstrap, **{"enable.idempotence": True})
    for partition, key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def captured_t(stack, spark, cleanup, prefix: str, rows: int):
    """Table ``t`` (id, v) with ``rows`` rows, captured and in silver; returns
    (pipeline, plan, ref, qualified name, its snapshot's Kafka records for a later replay)."""
    pipeline, plan = new_capture(stack, cleanup, prefix, {"t": "id int PRIMARY KEY, v text"},
                                 {"t": f"SELECT g, 'v' || g FROM generate_series(1, {rows}) g"})
    ref = plan.table("t")
    wait_records(pipeline, [ref.topic], rows)
    run_layers(spark, plan)
    snapshot = topic_records(pipeline.kafka.bootstrap, ref.topic, rows)
    return pipeline, plan, ref, f"{ref.schema}.t", snapshot


def test_replayed_changes_never_resurrect_a_deleted_key(stack, spark, cleanup):
    pipeline, plan, ref, table, snapshot_events = captured_t(stack, spark, cleanup, "replay", 50)

    execute(pipeline, f"DELETE FROM {table} WHERE id <= 10; UPDATE {table} SET v = 'new' WHERE id BETWEEN 11 AND 20")
    wait_records(pipeline, [ref.topic], 70)
    run_layers(spark, plan)
    assert silver_rows(spark, ref.silver, "id, v") == source_rows(pipeline, table, "id, v")
    delete_events = topic_records(pipeline.kafka.bootstrap, ref.topic, 70)

    # The replay lands in a silver batch of its own: the old inserts of deleted keys 1..10 and
    # the old values of updated keys 11..20 must not come back.
    replay(pipeline.kafka.bootstrap, ref.topic, snapshot_events)
    run_layers(spark, plan)
    assert silver_rows(spark, ref.silver, "id, v") == source_rows(pipeline, table, "id, v")
    tombstones = dict(silver_rows(spark, ref.tombstones, "id, _cdc_lsn"))
    assert sorted(tombstones) == list(range(1, 11))

    # A second, longer replay (snapshot, deletes and updates) in one batch, then a key deleted
    # earlier is inserted again for real: it must appear, with its new value.
    replay(pipeline.kafka.bootstrap, ref.topic, delete_events)
    execute(pipeline, f"INSERT INTO {table} VALUES (5, 'reborn')")
    wait_records(pipeline, [ref.topic], 50 + 70 + 70 + 1)
    run_layers(spark, plan)
    rows = silver_rows(spark, ref.silver, "id, v")
    assert rows == source_rows(pipeline, table, "id, v") and (5, "reborn") in rows
    assert_forward_only(spark, ref.silver, tombstones)
    assert_verified(plan)


def assert_forward_only(spark, silver: str, deleted_at: dict[int, int]) -> None:
    """Across every silver snapshot (time travel): a key's LSN never goes back, and a key gone
    in an earlier snapshot only returns with a change newer than its delete."""
    snapshots = [r.snapshot_id for r in spark.sql(f"SELECT snapshot_id FROM {silver}.snapshots "
                                                  "ORDER BY committed_at").collect()]
    assert len(snapshots) >= 4
    seen: dict[int, int] = {}
    gone: set[int] = set()
    for snapshot in snapshots:
        rows = dict(silver_rows(spark, silver, "id, _cdc_lsn", version=snapshot))
        for key, lsn in rows.items():
            assert lsn >= seen.get(key, lsn), f"key {key} went back to LSN {lsn} in snapshot {snapshot}"
            if key in gone:
                assert lsn > deleted_at[key], f"deleted key {key} came back with an older change in {snapshot}"
            seen[key] = lsn
        gone |= set(seen) - set(rows)


NUMERICS = ["1.000000000000000000000001", "0.0000001", "-123456789012345678901234567890123456789012.5",
            "NaN", "Infinity", "-Infinity", "0", "10.50"]


def numeric_rows() -> str:
    special = {"NaN", "Infinity", "-Infinity"}  # numeric(60,8) cannot hold the infinities
    return ", ".join(f"({i}, '{v}', {'NULL' if v in special else repr(v)}, 'x{i}', 'pad')"
                     for i, v in enumerate(NUMERICS))


def test_unconstrained_numeric_and_char_n_are_exact(stack, spark, cleanup):
    pipeline, plan = new_capture(
        stack, cleanup, "types",
        {"n": "id int PRIMARY KEY, free numeric, wide numeric(60, 8), filler char(84), code char(5)"},
        {"n": f"VALUES {numeric_rows()}"})
    ref, table = plan.table("n"), f"{plan.tables[0].schema}.n"
    execute(pipeline, f"UPDATE {table} SET free = free * 3, code = 'ab' WHERE id = 7")
    wait_records(pipeline, [ref.topic], len(NUMERICS) + 1)
    run_layers(spark, plan)

    types = {f.name: f.dataType.simpleString() for f in spark.table(ref.silver).schema.fields}
    assert types["free"] == types["wide"] == types["filler"] == "string"
    expected = source_rows(pipeline, table, "id, free::text, wide::text, filler, code")
    assert silver_rows(spark, ref.silver, "id, free, wide, filler, code") == expected
    assert any(row[1] == "1.000000000000000000000001" for row in expected)
    assert all(len(row[3]) == 84 for row in expected)
    assert_verified(plan)

    # verify is exact the other way too: one changed digit in silver is reported.
    spark.sql(f"UPDATE {ref.silver} SET free = '1.000000000000000000000002' WHERE id = 0")
    report = verify(plan, gold=False, progress=QUIET)
    assert not report.ok and report.tables[0].different == 1


def test_a_key_moved_many_times_in_one_batch_keeps_its_toasted_value(stack, spark, cleanup):
    """Each primary-key update sends the unchanged TOASTed column as a placeholder, filled from
    the key before it: one pass per hop. Eighteen hops in one batch, while the plan stays small."""
    big = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) i)"
    pipeline, plan = new_capture(stack, cleanup, "hops", {"p": "id int PRIMARY KEY, v text, doc text"},
                                 {"p": f"SELECT g, 'v', {big} || g FROM generate_series(1, 3) g"},
                                 setup="ALTER TABLE p ALTER COLUMN doc SET STORAGE EXTERNAL")
    ref, table = plan.table("p"), f"{plan.tables[0].schema}.p"
    wait_records(pipeline, [ref.topic], 3)
    run_layers(spark, plan)
    hops = 18
    for hop in range(1, hops + 1):  # row 1 moves 18 times; row 2 too, its doc rewritten halfway
        execute(pipeline, f"UPDATE {table} SET id = {100 * hop + 1}, v = 'hop{hop}' WHERE id = {100 * (hop - 1) + 1}; "
                          f"UPDATE {table} SET id = {100 * hop + 2} WHERE id = {100 * (hop - 1) + 2}"
                          + (f"; UPDATE {table} SET doc = 'rewritten' WHERE id = {100 * hop + 2}" if hop == 9 else ""))
    wait_records(pipeline, [ref.topic], 3 + hops * 4 + 1)  # a move is a delete and a create
    assert spark.sql(f"SELECT count(*) FROM {ref.bronze}").first()[0] == 3  # all of them in the next batch
    run_layers(spark, plan)
    expected = source_rows(pipeline, table, "id, v, md5(doc)")
    assert [r[0] for r in expected] == [3, 100 * hops + 1, 100 * hops + 2]
    assert silver_rows(spark, ref.silver, "id, v, md5(doc)") == expected
    assert_verified(plan)


def test_one_unreadable_table_does_not_stop_verify_of_the_others(stack, spark, cleanup):
    pipeline, plan = new_capture(stack, cleanup, "iso", {"a": "id int PRIMARY KEY", "b": "id int PRIMARY KEY"},
                                 {"a": "SELECT generate_series(1, 5)", "b": "SELECT generate_series(1, 3)"})
    wait_records(pipeline, [r.topic for r in plan.tables], 8)
    run_layers(spark, plan)
    execute(pipeline, f"DROP TABLE {plan.tables[1].schema}.b")
    report = verify(plan, gold=False, progress=QUIET)
    by_table = {t.table: t for t in report.tables}
    assert by_table[plan.table("a").source].ok and by_table[plan.table("a").source].silver_rows == 5
    assert by_table[plan.table("b").source].error and not report.ok


def test_truncate_empties_silver_at_its_position_and_replays_stay_out(stack, spark, cleanup):
    pipeline, plan, ref, table, before = captured_t(stack, spark, cleanup, "trunc", 30)
    assert len(silver_rows(spark, ref.silver, "id")) == 30

    # One batch: a row inserted before the TRUNCATE goes with it, rows inserted after it stay.
    execute(pipeline, f"INSERT INTO {table} VALUES (200, 'doomed'); UPDATE {table} SET v = 'late' WHERE id = 3")
    execute(pipeline, f"BEGIN; TRUNCATE {table}; INSERT INTO {table} VALUES (100, 'after'), (3, 'again'); COMMIT")
    wait_records(pipeline, [ref.topic], 30 + 2 + 1 + 2)
    run_layers(spark, plan)
    assert spark.sql(f"SELECT count(*) FROM {ref.bronze} WHERE op = 't'").first()[0] == 1
    assert silver_rows(spark, ref.silver, "id, v") == source_rows(pipeline, table, "id, v") == [(3, "again"),
                                                                                              (100, "after")]

    # A TRUNCATE alone in a batch, then the pre-TRUNCATE events re-sent: silver stays empty.
    execute(pipeline, f"TRUNCATE {table}")
    wait_records(pipeline, [ref.topic], 36)
    run_layers(spark, plan)
    assert silver_rows(spark, ref.silver, "id") == []
    replay(pipeline.kafka.bootstrap, ref.topic, before)
    execute(pipeline, f"INSERT INTO {table} VALUES (7, 'fresh')")
    wait_records(pipeline, [ref.topic], 36 + 30 + 1)
    run_layers(spark, plan)
    assert silver_rows(spark, ref.silver, "id, v") == source_rows(pipeline, table, "id, v") == [(7, "fresh")]
    assert_verified(plan)


def with_tables(pipeline, plan_tables: list[str]):
    source = pipeline.source.with_tables(plan_tables)
    return pipeline.model_copy(update={"source": source})


def until_exact(spark, plan, pipeline, ref, table: str, columns: str = "id, v", attempts: int = 8) -> list:
    """Run bronze and silver until silver equals the source (the snapshot may still be arriving)."""
    expected = source_rows(pipeline, table, columns)
    for _ in range(attempts):
        run_layers(spark, plan)
        got = silver_rows(spark, ref.silver, columns)
        if got == expected:
            return got
        time.sleep(3)
    assert got == expected


def test_a_table_added_later_brings_its_rows_and_one_added_back_drops_what_it_missed(stack, spark, cleanup):
    from cdclake.capture import service

    pipeline, plan = new_capture(stack, cleanup, "late", {"a": "id int PRIMARY KEY, v text",
                                                          "b": "id int PRIMARY KEY, v text"},
                                 {"a": "SELECT g, 'a' FROM generate_series(1, 20) g",
                                  "b": "SELECT g, 'b' || g FROM generate_series(1, 500) g"})
    schema = plan.tables[0].schema
    only_a = with_tables(pipeline, [f"{schema}.a"])
    service.apply(only_a, progress=QUIET)  # the connector as it was before b was added: a only
    execute(pipeline, f"UPDATE {schema}.b SET v = 'changed' WHERE id <= 100")  # not captured yet

    added = service.apply(pipeline, progress=QUIET)
    assert list(added["snapshots"]) == [f"{schema}.b"]
    execute(pipeline, f"UPDATE {schema}.b SET v = 'streamed' WHERE id BETWEEN 50 AND 60; "
                      f"DELETE FROM {schema}.b WHERE id > 490; INSERT INTO {schema}.b VALUES (1000, 'new')")
    b = plan.table("b")
    wait_records(pipeline, [b.topic], 500 + 11 + 10 + 1)
    until_exact(spark, plan, pipeline, b, f"{schema}.b")

    # Removed, changed while not captured (deletes too), added back: silver follows exactly.
    service.apply(only_a, progress=QUIET)
    execute(pipeline, f"DELETE FROM {schema}.b WHERE id <= 200; UPDATE {schema}.b SET v = 'gap' WHERE id > 400")
    offsets = wait_records(pipeline, [b.topic], 0)
    assert list(service.apply(pipeline, progress=QUIET)["snapshots"]) == [f"{schema}.b"]
    wait_records(pipeline, [b.topic], offsets + 291)
    rows = until_exact(spark, plan, pipeline, b, f"{schema}.b")
    assert len(rows) == 291 and min(rows)[0] == 201
    assert_verified(plan)


def test_a_write_in_flight_when_its_table_is_added_is_not_lost(stack, spark, cleanup):
    """A transaction wrote to b before b was added and commits only later: its changes are older
    than the re-snapshot marker, so the snapshot must see them (apply waits for the commit)."""
    from cdclake.capture import service

    pipeline, plan = new_capture(stack, cleanup, "inflight", {"a": "id int PRIMARY KEY",
                                                              "b": "id int PRIMARY KEY, v text"},
                                 {"a": "SELECT 1", "b": "SELECT g, 'b' FROM generate_series(1, 50) g"})
    schema, b = plan.tables[0].schema, plan.table("b")
    service.apply(with_tables(pipeline, [f"{schema}.a"]), progress=QUIET)
    applied: dict = {}
    with connection.connect(pipeline) as writer:
        writer.execute(f"INSERT INTO {schema}.b VALUES (999, 'in flight'); "
                       f"UPDATE {schema}.b SET v = 'in flight' WHERE id = 7; DELETE FROM {schema}.b WHERE id = 8")
        # Another commit writes the WAL out past those changes, so the marker's position is after them.
        execute(pipeline, f"UPDATE {schema}.a SET id = 2")
        adding = threading.Thread(target=lambda: applied.update(service.apply(pipeline, progress=QUIET)))
        adding.start()
        time.sleep(8)  # long enough for b's 50 rows to be snapshotted, were apply not waiting
        assert adding.is_alive() and not applied  # held at the marker until the writer commits
        writer.commit()
    adding.join(180)
    assert list(applied["snapshots"]) == [f"{schema}.b"]
    wait_records(pipeline, [b.topic], 50)
    rows = until_exact(spark, plan, pipeline, b, f"{schema}.b")
    assert (999, "in flight") in rows and (7, "in flight") in rows and len(rows) == 50
    assert_verified(plan)


def test_a_table_without_primary_key_keyed_by_named_unique_columns(stack, spark, cleanup):
    pipeline, plan = new_capture(stack, cleanup, "nopk", {"audit": "at int NOT NULL, what text NOT NULL, n int"},
                                 {"audit": "SELECT g % 10, 'w' || (g / 10), g FROM generate_series(0, 99) g"},
                                 keys={"audit": ["at", "what"]}, setup="ALTER TABLE audit REPLICA IDENTITY FULL")
    ref, table = plan.table("audit"), f"{plan.tables[0].schema}.audit"
    wait_records(pipeline, [ref.topic], 100)
    execute(pipeline, f"UPDATE {table} SET n = -n WHERE at < 3; DELETE FROM {table} WHERE at = 9; "
                      f"UPDATE {table} SET what = what || '!' WHERE at = 5")  # the last one moves keys
    wait_records(pipeline, [ref.topic], 100 + 30 + 10 + 20)
    run_layers(spark, plan)
    assert silver_rows(spark, ref.silver, "at, what, n") == source_rows(pipeline, table, "at, what, n")
    assert len(silver_rows(spark, ref.silver, "at")) == 90
    assert_verified(plan)


def test_text_and_composite_keys_merge_through_the_key_filter(stack, spark, cleanup, monkeypatch):
    """A batch of few keys MERGEs with ``t``'s key IN (its keys), so Spark reads only their rows of
    silver: the literals must match exactly keys with quotes, backslashes, spaces and non-ASCII."""
    monkeypatch.setattr(silver, "KEY_FILTER_MIN_ROWS_PER_KEY", 0)  # these tables are far too small to use it
    odd = "E'it''s', E'back\\\\slash', ' padded ', 'Straße', 'STRASSE', E'tab\\there', ''"
    pipeline, plan = new_capture(
        stack, cleanup, "keyin", {"s": "k text PRIMARY KEY, v int", "c": "a text, b int, v text, PRIMARY KEY (a, b)"},
        {"s": f"SELECT k, 1 FROM unnest(ARRAY[{odd}]) k",
         "c": f"SELECT k, g, 'v' FROM unnest(ARRAY[{odd}]) k, generate_series(1, 3) g"})
    s, c = plan.table("s"), plan.table("c")
    schema = plan.tables[0].schema
    wait_records(pipeline, [s.topic, c.topic], 7 + 21)
    merges, real_sql = [], spark.sql

    def recording_sql(text, *args, **kwargs):
        if text.startswith(f"MERGE INTO {s.silver} ") or text.startswith(f"MERGE INTO {c.silver} "):
            merges.append(text)
        return real_sql(text, *args, **kwargs)

    monkeypatch.setattr(spark, "sql", recording_sql)
    run_layers(spark, plan)
    execute(pipeline, f"UPDATE {schema}.s SET v = 2 WHERE k IN ('it''s', ' padded '); "
                      f"DELETE FROM {schema}.s WHERE k = 'STRASSE'; INSERT INTO {schema}.s VALUES ('padded', 3); "
                      f"UPDATE {schema}.c SET v = 'w' WHERE b = 2; DELETE FROM {schema}.c WHERE a = E'back\\\\slash'; "
                      f"INSERT INTO {schema}.c VALUES ('Straße', 4, 'new'), ('it''s', 4, 'new')")
    wait_records(pipeline, [s.topic, c.topic], 7 + 21 + 4 + 12)
    run_layers(spark, plan)
    keyed = [m for m in merges if " IN (" in m.split(" WHEN ")[0]]
    assert len(keyed) >= 4, merges  # both tables, both batches, went through the key filter
    assert silver_rows(spark, s.silver, "k, v") == source_rows(pipeline, f"{schema}.s", "k, v")
    assert silver_rows(spark, c.silver, "a, b, v") == source_rows(pipeline, f"{schema}.c", "a, b, v")
    assert len(silver_rows(spark, c.silver, "a")) == 21 - 3 + 2
    assert_verified(plan)
