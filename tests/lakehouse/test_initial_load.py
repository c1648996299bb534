"""The parallel initial load (lakehouse/initial_load.py): a table's rows read in chunks at one
exported snapshot straight into bronze, while writes go on and Debezium streams every change
after the snapshot. Each test ends with silver compared with PostgreSQL and ``verify``."""

from __future__ import annotations

import threading

import pytest

from cdclake.capture import service
from cdclake.lakehouse import initial_load, silver
from cdclake.source import connection
from tests.lakehouse.conftest import wait_confirmed
from tests.lakehouse.test_silver_exact import QUIET, assert_verified, execute, new_capture, until_exact, with_tables

pytestmark = pytest.mark.integration

TYPED = ('id int PRIMARY KEY, v text, ch char(5), n numeric(12,2), u numeric, f4 real, f8 double precision, '
         'b boolean, d date, ts timestamp, ts3 timestamp(3), tz timestamptz, t time, by bytea, j jsonb, js json, '
         'uu uuid, ip inet, m mood, "Odd ""Name""" int')
TYPED_ROWS = ("""SELECT g, 'v' || g || E' \\\\ '' "q"', 'ab', g / 3.0, (g / 7.0) * 1.000000000000000000001, g / 3.0,
      g / 3.0, g % 2 = 0, DATE '2000-01-01' + g, TIMESTAMP '1969-12-31 23:59:59.123456' + g * interval '1 second',
      TIMESTAMP '2001-01-01 00:00:00.123' + g * interval '1 ms', TIMESTAMPTZ '2020-02-29 12:00:00.5+05' + g * interval '1 minute',
      TIME '00:00:00.000001' + g * interval '1 ms', decode(md5(g::text), 'hex'), jsonb_build_object('k', g),
      '{"b": 1,  "a": 2}', md5(g::text)::uuid, '10.0.0.1', (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::mood, g
    FROM generate_series(1, 3000) g""")
EDGES = ("INSERT INTO typed (id, u, f4, f8, ts, tz, d) VALUES (-1, 'NaN', 'NaN', '-Infinity', 'infinity', 'infinity', "
         "'1970-01-01'), (-2, '-Infinity', 'Infinity', 1e300, '-infinity', '-infinity', NULL), "
         "(-3, 0.0000000000000000000000000001, -0.0, 5e-324, '0001-01-01', '0001-01-01 00:00:00+00', '0001-01-01')")


def parallel(pipeline):
    connect = pipeline.connect.model_copy(update={"initial_load": "parallel"})
    return pipeline.model_copy(update={"connect": connect})


class Writer(threading.Thread):
    """Updates, deletes and inserts on ``table`` until stopped: the load must see none of them
    twice and miss none."""

    def __init__(self, pipeline, table: str):
        super().__init__(daemon=True)
        self.pipeline, self.table, self.stop, self.commits = pipeline, table, threading.Event(), 0

    def run(self) -> None:
        with connection.connect(self.pipeline, autocommit=True) as conn:
            while not self.stop.is_set():
                i = self.commits
                with conn.transaction():
                    conn.execute(f"UPDATE {self.table} SET v = 'w' || %s WHERE id = %s", (i, i * 7 % 3000 + 1))
                    conn.execute(f"DELETE FROM {self.table} WHERE id = %s", (i * 13 % 3000 + 1,))
                    conn.execute(f"INSERT INTO {self.table} (id, v) VALUES (%s, 'new') ON CONFLICT (id) DO UPDATE "
                                 "SET v = 'again'", (10_000 + i % 300,))
                self.commits += 1
                self.stop.wait(0.005)

    def finish(self) -> int:
        self.stop.set()
        self.join(30)
        return self.commits


def test_a_first_run_loads_every_table_in_parallel_while_writes_go_on(stack, spark, cleanup):
    """A new connector with ``initial_load: parallel``: the keyed table of every supported type is
    loaded straight into bronze at one snapshot while a writer commits; the keyless table takes
    the blocking snapshot and the table with an interval the incremental one. Then the keyed
    table is removed from capture, changed (deletes too), and added back: loaded again."""
    ddl = {"typed": TYPED, "keyless": "a int, b text", "other": "id int PRIMARY KEY, iv interval"}
    rows = {"typed": TYPED_ROWS, "keyless": "SELECT g % 5, 'k' FROM generate_series(1, 40) g",
            "other": "SELECT g, g * interval '1 hour' FROM generate_series(1, 30) g"}
    writer = None

    def with_writer(pipeline) -> None:  # new_capture's setup step: writes start before the connector
        nonlocal writer
        writer = Writer(pipeline, f"{pipeline.source.tables[0].schema}.typed")
        writer.start()

    pipeline, plan = new_capture(stack, cleanup, "pload", ddl, rows, types="CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
                                 setup=EDGES + "; ALTER TABLE keyless REPLICA IDENTITY FULL", adjust=parallel,
                                 before_capture=with_writer)
    assert writer.finish() > 0
    schema = plan.tables[0].schema
    typed = plan.table("typed")
    loaded = spark.sql(f"SELECT count(*) FROM {typed.bronze} WHERE kafka_partition = "
                       f"{initial_load.LOADED_PARTITION}").first()[0]
    assert loaded > 1000  # read by the load, not by Debezium (the writer deletes some before it)
    wait_confirmed(pipeline)
    until_exact(spark, plan, pipeline, typed, f"{schema}.typed")
    assert_verified(plan)

    only_others = with_tables(pipeline, [f"{schema}.keyless", f"{schema}.other"])
    service.apply(only_others, progress=QUIET)
    execute(pipeline, f"DELETE FROM {schema}.typed WHERE id <= 1000; UPDATE {schema}.typed SET v = 'gap' WHERE id > 2900")
    wait_confirmed(only_others)  # Debezium is past the gap: re-added, it does not stream those changes
    assert service.apply(pipeline, progress=QUIET)["snapshots"][f"{schema}.typed"].startswith("parallel load")
    execute(pipeline, f"UPDATE {schema}.typed SET v = 'after' WHERE id BETWEEN 2000 AND 2010")
    wait_confirmed(pipeline)
    until_exact(spark, plan, pipeline, typed, f"{schema}.typed")
    silver.rebuild(spark, plan, typed)  # bronze holds the loaded rows: a rebuild keeps them
    until_exact(spark, plan, pipeline, typed, f"{schema}.typed")
    assert_verified(plan)


def test_a_table_that_cannot_be_loaded_in_parallel_is_refused_with_the_reason(stack, spark, cleanup):
    pipeline, plan = new_capture(stack, cleanup, "prefuse", {"r": "id int PRIMARY KEY, tags text[]"},
                                 {"r": "SELECT 1, ARRAY['a']"})
    with pytest.raises(Exception, match=r"tags \(text\[\]\).*connector snapshot"):
        service.snapshot_table(pipeline, f"{plan.tables[0].schema}.r", progress=QUIET, parallel=True)
