"""The lakehouse jobs under faults, on the real stack: job processes SIGKILLed at each named
crash point (lakehouse/faults.py), repeatedly; two silver runs committing at once; a
catalog name other than the tables'. Each kill first proves the state its point implies
(snapshots, checkpoint files, files written but never committed), then the recovered
outcome: bronze holds every Kafka record once, silver equals PostgreSQL row for row, and
``cdclake verify`` exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from cdclake.broker.topics import end_offsets
from cdclake.lakehouse import bronze, runner
from cdclake.lakehouse.catalog import connect_database
from cdclake.lakehouse.configuration import BRONZE_OFFSETS_KEY, SILVER_WATERMARK_KEY
from cdclake.lakehouse.spark import load_table
from tests.lakehouse.conftest import silver_rows, source_rows, wait_records, write_pipeline
from tests.lakehouse.test_silver_exact import execute, new_capture

pytestmark = pytest.mark.integration
QUIET = lambda message: None  # noqa: E731
CDCLAKE = Path(sys.executable).parent / "cdclake"
ROUNDS = 2  # kills at each named point; bench/chaos/driver_kills.py runs longer
INITIAL, INSERTS, UPDATES, DELETES = 100, 40, 15, 10
BATCH_ID_KEY = "cdclake.bronze.batch-id"


# --- the job processes ---------------------------------------------------------------

def job(config: Path, layer: str, fault: str | None = None, **popen) -> subprocess.Popen:
    """The job script as a process of its own (its own JVM), optionally armed with a crash point."""
    env = {k: v for k, v in os.environ.items() if k != "CDCLAKE_FAULT"}
    if fault:
        env["CDCLAKE_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "cdclake.lakehouse.jobs.run", "--config", str(config),
                             "--layer", layer], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def killed_at(config: Path, point: str) -> None:
    """Run the layer of ``point`` with it armed; it must die by SIGKILL there."""
    proc = job(config, point.split(".")[0], point)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -9, f"{point}: exit {proc.returncode}, not killed\n{out[-3000:]}"


# --- what the tables and the checkpoint hold -----------------------------------------

def snapshots(spark, name: str) -> list[tuple[int, dict]]:
    """(snapshot id, summary) of every snapshot, oldest first; [] for a missing table."""
    if not spark.catalog.tableExists(name):
        return []
    rows = spark.sql(f"SELECT snapshot_id, summary FROM {name}.snapshots ORDER BY committed_at").collect()
    return [(r.snapshot_id, dict(r.summary)) for r in rows]


def uncommitted_files(spark, name: str) -> set[str]:
    """Data and delete files in the table's directory that no snapshot references."""
    data = Path(urlsplit(load_table(spark, name).location()).path) / "data"
    on_disk = {str(p) for p in data.rglob("*.parquet")} if data.exists() else set()
    referenced = {urlsplit(r.file_path).path for r in spark.sql(f"SELECT file_path FROM {name}.all_files").collect()}
    return on_disk - referenced


def checkpoint_batches(plan, ref) -> tuple[dict[int, dict[int, int]], set[int]]:
    """Bronze's streaming checkpoint: {batch: Kafka end offsets per partition} planned, and batches committed."""
    root = Path(urlsplit(bronze.checkpoint(plan, ref)).path)
    planned = {}
    for path in (root / "offsets").glob("[0-9]*"):
        source = json.loads(path.read_text().splitlines()[2])  # v1, then batch metadata, then the source's offsets
        planned[int(path.name)] = {int(p): o for p, o in source[ref.topic].items()}
    return planned, {int(p.name) for p in (root / "commits").glob("[0-9]*")}


def duplicated_events(spark, ref) -> int:
    return spark.sql(f"SELECT kafka_partition, kafka_offset FROM {ref.bronze} GROUP BY 1, 2 "
                     "HAVING count(*) > 1").count()


def topic_total(pipeline, ref) -> int:
    return sum(end_offsets(pipeline.kafka.bootstrap, [ref.topic])[ref.topic].values())


# --- the source's changes ------------------------------------------------------------

def change_round(pipeline, table: str, r: int) -> tuple[int, set[int]]:
    """Round ``r``'s inserts, updates, deletes (and the re-insert of a key deleted the round
    before). Returns (Kafka records it makes, the keys it deleted)."""
    first = INITIAL + (r - 1) * INSERTS
    deleted = set(range((r - 1) * DELETES + 1, r * DELETES + 1))
    execute(pipeline, f"INSERT INTO {table} SELECT g, 'new ' || g FROM generate_series({first + 1}, "
                      f"{first + INSERTS}) g")
    execute(pipeline, f"UPDATE {table} SET v = 'round {r}' WHERE id BETWEEN 51 AND {50 + UPDATES}")
    execute(pipeline, f"DELETE FROM {table} WHERE id BETWEEN {min(deleted)} AND {max(deleted)}")
    records = INSERTS + UPDATES + DELETES
    if r > 1:
        execute(pipeline, f"INSERT INTO {table} VALUES ({min(deleted) - 1}, 'reborn {r}')")
        records += 1
    return records, deleted


# --- the kills, each with the state its point implies --------------------------------

def kill_bronze_before_commit(spark, plan, ref, config) -> None:
    before, orphans = snapshots(spark, ref.bronze), uncommitted_files(spark, ref.bronze) if \
        spark.catalog.tableExists(ref.bronze) else set()
    killed_at(config, "bronze.before_commit")
    planned, committed = checkpoint_batches(plan, ref)
    batch = max(planned)
    assert batch not in committed, f"batch {batch} committed in the checkpoint"
    assert snapshots(spark, ref.bronze) == before, "bronze committed a snapshot before its commit point"
    assert uncommitted_files(spark, ref.bronze) > orphans, "the killed batch wrote no data files"


def kill_bronze_after_commit(spark, plan, ref, config, expected_events: int) -> None:
    killed_at(config, "bronze.after_commit")
    snapshot_id, summary = snapshots(spark, ref.bronze)[-1]
    batch = int(summary[BATCH_ID_KEY])
    planned, committed = checkpoint_batches(plan, ref)
    assert batch == max(planned) and batch not in committed, (batch, sorted(planned), sorted(committed))
    # The snapshot holds exactly the offsets the checkpoint planned for the batch it never committed.
    assert json.loads(summary[BRONZE_OFFSETS_KEY]) == {str(p): o - 1 for p, o in planned[batch].items() if o}
    assert duplicated_events(spark, ref) == 0
    assert spark.table(ref.bronze).count() == expected_events


def kill_silver_after_tombstones(spark, ref, config, deleted: set[int]) -> None:
    before = snapshots(spark, ref.silver)
    killed_at(config, "silver.after_tombstones")
    assert snapshots(spark, ref.silver) == before, "silver committed before its MERGE"
    tombstones = {row[0] for row in silver_rows(spark, ref.tombstones, "id")}
    assert deleted <= tombstones, f"deletes {sorted(deleted - tombstones)} have no tombstone"


def kill_silver_before_commit(spark, ref, config) -> None:
    before, orphans = snapshots(spark, ref.silver), uncommitted_files(spark, ref.silver)
    killed_at(config, "silver.before_commit")
    assert snapshots(spark, ref.silver) == before, "silver's MERGE committed before its commit point"
    assert uncommitted_files(spark, ref.silver) > orphans, "the killed MERGE wrote no files"


def kill_silver_after_commit(spark, pipeline, ref, config, table: str) -> None:
    before = snapshots(spark, ref.silver)
    killed_at(config, "silver.after_commit")
    after = snapshots(spark, ref.silver)
    assert len(after) == len(before) + 1, "the MERGE and its watermark are one commit"
    assert after[-1][1][SILVER_WATERMARK_KEY] == str(snapshots(spark, ref.bronze)[-1][0])
    assert_silver_exact(spark, pipeline, ref, table)


def assert_silver_exact(spark, pipeline, ref, table: str) -> None:
    assert silver_rows(spark, ref.silver, "id, v") == source_rows(pipeline, table, "id, v")
    assert spark.sql(f"SELECT id FROM {ref.silver} GROUP BY id HAVING count(*) > 1").count() == 0


def verify_cli(config: Path) -> None:
    done = subprocess.run([str(CDCLAKE), "-c", str(config), "verify", "--no-gold"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(2400)  # 5 job processes (JVMs) a round; slow on a loaded 2-core machine
def test_jobs_killed_at_every_named_point_repeatedly_lose_and_duplicate_nothing(stack, spark, cleanup):
    pipeline, plan = new_capture(stack, cleanup, "kills", {"t": "id int PRIMARY KEY, v text"},
                                 {"t": f"SELECT g, 'v' || g FROM generate_series(1, {INITIAL}) g"})
    ref, table = plan.table("t"), f"{plan.tables[0].schema}.t"
    config = write_pipeline(pipeline, ref.schema)
    expected, deleted = INITIAL, set()
    wait_records(pipeline, [ref.topic], expected)
    for r in range(1, ROUNDS + 1):
        records, gone = change_round(pipeline, table, r)
        expected, deleted = expected + records, deleted | gone
        wait_records(pipeline, [ref.topic], expected)
        kill_bronze_before_commit(spark, plan, ref, config)
        kill_bronze_after_commit(spark, plan, ref, config, expected)
        kill_silver_after_tombstones(spark, ref, config, gone)
        kill_silver_before_commit(spark, ref, config)
        kill_silver_after_commit(spark, pipeline, ref, config, table)

    # The clean run replays the batch bronze's checkpoint never committed: nothing new lands.
    report = runner.run(spark, plan, ["bronze", "silver"], progress=QUIET)
    assert not report.failures and not any(s.merged for s in report.silver)
    assert duplicated_events(spark, ref) == 0
    assert spark.table(ref.bronze).count() == expected == topic_total(pipeline, ref)
    assert_silver_exact(spark, pipeline, ref, table)
    assert {row[0] for row in silver_rows(spark, ref.tombstones, "id")} == deleted
    verify_cli(config)


# --- two silver runs at once ---------------------------------------------------------

def wait_waiting_on(plan, holder: int, count: int, procs, timeout: float = 600) -> None:
    """Until ``count`` sessions wait on the row ``holder`` locked (each job's commit), or a job ends.

    The first waits on ``holder``, the next on the first (queued for the same row), so
    count every blocked session of the catalog database.
    """
    deadline = time.monotonic() + timeout
    with connect_database(plan, autocommit=True) as watcher:
        while True:
            waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND pid <> %s AND cardinality(pg_blocking_pids(pid)) > 0",
                                      (holder,)).fetchone()[0]
            if waiting >= count:
                return
            ended = [p for p in procs if p.poll() is not None]
            assert not ended, f"a silver run ended before committing: {ended[0].stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, f"{waiting} of {count} silver commits waiting after {timeout}s"
            time.sleep(0.2)


def test_two_silver_runs_at_once_one_commits_the_other_retries_from_its_watermark(stack, spark, cleanup):
    pipeline, plan = new_capture(stack, cleanup, "twosilver", {"t": "id int PRIMARY KEY, v text"},
                                 {"t": f"SELECT g, 'v' || g FROM generate_series(1, {INITIAL}) g"})
    ref, table = plan.table("t"), f"{plan.tables[0].schema}.t"
    config = write_pipeline(pipeline, ref.schema)
    wait_records(pipeline, [ref.topic], INITIAL)
    assert not runner.run(spark, plan, ["bronze", "silver"], progress=QUIET).failures
    records, _ = change_round(pipeline, table, 1)
    wait_records(pipeline, [ref.topic], INITIAL + records)
    assert not runner.run(spark, plan, ["bronze"], progress=QUIET).failures
    before = snapshots(spark, ref.silver)

    # Hold silver's catalog row: both runs read the same watermark, MERGE, and wait to commit.
    with connect_database(plan) as holder:
        holder.execute("SELECT 1 FROM iceberg_tables WHERE catalog_name = %s AND table_namespace = %s "
                       "AND table_name = %s FOR UPDATE", (plan.catalog.name, plan.namespace, ref.silver.rsplit(".", 1)[1]))
        procs = [job(config, "silver") for _ in range(2)]
        try:
            wait_waiting_on(plan, holder.info.backend_pid, 2, procs)
        except BaseException:
            for proc in procs:
                proc.kill()
            raise
        holder.rollback()
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    # One MERGE went through; the other run lost the race and started over from its watermark.
    # (Either may also have lost the race for the tombstones, committed just before.)
    merged = [o for o in outputs if "merged" in o]
    assert len(merged) == 1, outputs
    loser = next(o for o in outputs if "merged" not in o)
    assert "another silver run committed first" in loser, loser
    after = snapshots(spark, ref.silver)
    assert len(after) == len(before) + 1, "exactly one of the two MERGEs committed"
    assert after[-1][1][SILVER_WATERMARK_KEY] == str(snapshots(spark, ref.bronze)[-1][0])
    assert_silver_exact(spark, pipeline, ref, table)
    verify_cli(config)


# --- a catalog name other than the tables' -------------------------------------------

def test_a_catalog_name_other_than_the_tables_is_refused_and_nothing_is_written(stack, spark, cleanup):
    pipeline, plan = new_capture(stack, cleanup, "catname", {"t": "id int PRIMARY KEY, v text"},
                                 {"t": "SELECT g, 'v' || g FROM generate_series(1, 20) g"})
    ref = plan.table("t")
    wait_records(pipeline, [ref.topic], 20)
    assert not runner.run(spark, plan, ["bronze", "silver"], progress=QUIET).failures
    bronze_before, silver_before = snapshots(spark, ref.bronze), snapshots(spark, ref.silver)
    checkpoint_before = checkpoint_batches(plan, ref)

    config = write_pipeline(pipeline, ref.schema)
    doc = yaml.safe_load(config.read_text())
    doc["lakehouse"]["catalog"] = "lake_renamed"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    for command in (["run", "bronze"], ["verify", "--no-gold"], ["sql", f"SELECT count(*) FROM {ref.silver_short}"]):
        done = subprocess.run([str(CDCLAKE), "-c", str(config), *command], capture_output=True, text=True,
                              timeout=300)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, (command, done.stdout, done.stderr)
        assert "lakehouse.catalog is 'lake_renamed'" in lines[0], lines[0]
        assert f"set lakehouse.catalog: {plan.catalog.name} in pipeline.yaml" in lines[0], lines[0]

    with connect_database(plan) as conn:
        assert conn.execute("SELECT count(*) FROM iceberg_tables WHERE catalog_name = 'lake_renamed'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM iceberg_namespace_properties "
                            "WHERE catalog_name = 'lake_renamed'").fetchone()[0] == 0
    assert snapshots(spark, ref.bronze) == bronze_before and snapshots(spark, ref.silver) == silver_before
    assert checkpoint_batches(plan, ref) == checkpoint_before
