"""``cdclake run bronze|silver|gold|all``: the layers in order, one table's failure
isolated from the others.

Batch mode (``--available-now``, the default): bronze drains Kafka and stops, then silver
merges, then gold rebuilds. Continuous mode: bronze streams with the configured trigger,
each bronze commit merges that table into silver at once, and gold rebuilds every
trigger interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cdclake.broker.topics import topic_partitions
from cdclake.lakehouse import bronze, gold, silver
from cdclake.lakehouse.configuration import LakehousePlan, TableRef
from cdclake.lakehouse.exceptions import JobsFailedError, LakehouseError
from cdclake.monitoring.runs import JobRun, record_job
from cdclake.progress import Meter

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LAYERS = ("bronze", "silver", "gold")
Progress = Callable[[str], None]


@dataclass
class RunReport:
    layers: list[str]
    bronze: dict[str, Any] = field(default_factory=dict)
    silver: list[silver.SilverResult] = field(default_factory=list)
    gold: list[gold.GoldResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def raise_on_failure(self) -> None:
        if self.failures:
            raise JobsFailedError(self.failures)


def failure_reason(exc: BaseException) -> str:
    """Spark's own reason for a failure, in one line.

    PySpark's ``CapturedException`` (``StreamingQueryException`` among them) has no
    ``getMessage()``; its ``desc`` is the JVM message, while ``str()`` appends the JVM
    stack trace. Any other exception gives its ``str()``, or its type when that is empty.
    """
    text = (getattr(exc, "desc", None) or str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def layers_for(name: str) -> list[str]:
    return list(LAYERS) if name == "all" else [name]


def run_bronze(spark: SparkSession, plan: LakehousePlan, report: RunReport, progress: Progress,
               available_now: bool = True, on_commit: bronze.OnCommit | None = None) -> list:
    """Start one stream per table; in available-now mode wait until all drained."""
    from pyspark.errors import StreamingQueryException

    partitions = topic_partitions(plan.bootstrap, [r.topic for r in plan.tables])
    queries = []
    for ref in plan.tables:
        try:
            queries.append((ref, bronze.start(spark, plan, ref, available_now=available_now, on_commit=on_commit,
                                              partitions=partitions.get(ref.topic))))
        except LakehouseError as exc:
            report.failures[ref.source] = str(exc)
    if not available_now:
        return queries
    meter = Meter("bronze", len(queries), "tables", per_second=False)
    for done, (ref, query) in enumerate(queries, 1):
        try:
            query.awaitTermination()
            report.bronze[ref.source] = "drained"
            events = sum(p.get("numInputRows", 0) for p in query.recentProgress)
            progress(meter.line(done, f"{ref.bronze_short} drained {ref.topic} ({events} events)"))
        except StreamingQueryException as exc:
            report.failures[ref.source] = f"bronze: {failure_reason(exc)}"
    return queries


def run_silver_table(spark: SparkSession, plan: LakehousePlan, ref: TableRef, report: RunReport,
                     progress: Progress) -> None:
    try:
        result = silver.run(spark, plan, ref)
    except LakehouseError as exc:
        report.failures[ref.source] = str(exc)
        progress(f"silver {ref.silver_short}: FAILED: {exc}")
        return
    report.silver.append(result)
    if result.conflicts:
        progress(f"silver {ref.silver_short}: another silver run committed first ({result.conflicts} time(s)); "
                 "retried from the watermark it left")
    for change in result.schema_changes:
        progress(f"silver {ref.silver_short}: {change}")
    if result.merged:
        progress(f"silver {ref.silver_short}: merged {result.changes} key(s) up to bronze snapshot "
                 f"{result.bronze_snapshot} in {result.seconds:.1f}s")


def run_gold(spark: SparkSession, plan: LakehousePlan, report: RunReport, progress: Progress,
             select: Sequence[str] = ()) -> dict[str, str]:
    """The gold models (``select``: dbt-style selectors, default all); each failure reported by
    model. Returns this run's failures."""
    try:
        results = gold.run(spark, plan, select)
    except LakehouseError as exc:
        report.failures["gold"] = str(exc)
        progress(f"gold: FAILED: {exc}")
        return {"gold": str(exc)}
    report.gold.extend(results)
    failed = {}
    for result in results:
        if result.error:
            report.failures[result.model] = failed[result.model] = result.error
            progress(f"gold {result.model}: FAILED: {result.error}")
        elif result.rebuilt:
            tests = f", {result.tests} data test(s) passed" if result.tests else ""
            progress(f"gold {result.model}: rebuilt in {result.seconds:.1f}s{tests}")
    return failed


def recorded(plan: LakehousePlan, report: RunReport, job: str, keys: list[str], work: Callable[[], Any]) -> None:
    """Run ``work`` (one layer over the tables ``keys``) and add it to the run ledger.

    The keys' earlier failures are cleared first: in continuous mode a table that failed
    and then merged is healthy again. A ``work`` that returns a dict names its failures
    itself (gold: by model).
    """
    for key in keys:
        report.failures.pop(key, None)
    started, returned = time.time(), None
    try:
        returned = work()
    finally:
        if plan.state_dir is not None:
            failures = returned if isinstance(returned, dict) else {
                key: report.failures[key] for key in keys if key in report.failures}
            record_job(plan.state_dir, JobRun(job, started, time.time() - started, failures))


def run(spark: SparkSession, plan: LakehousePlan, layers: list[str], progress: Progress = print,
        select: Sequence[str] = ()) -> RunReport:
    """Run the layers once, in order (bronze drains Kafka and stops; ``select`` picks gold models)."""
    report = RunReport(layers)
    if "bronze" in layers:
        recorded(plan, report, "bronze", [r.source for r in plan.tables],
                 lambda: run_bronze(spark, plan, report, progress))
    if "silver" in layers:
        todo = [ref for ref in plan.tables if ref.source not in report.failures]
        meter = Meter("silver", len(todo), "tables", per_second=False)

        def merge_all() -> None:
            for done, ref in enumerate(todo, 1):
                run_silver_table(spark, plan, ref, report, progress)
                progress(meter.line(done))

        recorded(plan, report, "silver", [r.source for r in todo], merge_all)
    if "gold" in layers:
        recorded(plan, report, "gold", ["gold"], lambda: run_gold(spark, plan, report, progress, select))
    return report


def run_continuous(spark: SparkSession, plan: LakehousePlan, layers: list[str], progress: Progress = print,
                   stop: threading.Event | None = None) -> RunReport:
    """Stream until ``stop`` is set (or Ctrl-C): bronze triggers, silver per bronze commit, gold on a timer."""
    report = RunReport(layers)
    stop = stop or threading.Event()

    def merge_table(ref: TableRef) -> None:
        # Called from a bronze batch: a silver failure is reported and retried on the next
        # batch; it must never fail the bronze stream.
        def merge() -> None:
            try:
                run_silver_table(spark, plan, ref, report, progress)
            except Exception as exc:  # noqa: BLE001 - Py4J/Spark errors of any kind
                report.failures[ref.source] = f"silver: {failure_reason(exc)}"
                progress(f"silver {ref.silver_short}: failed, retrying on the next batch: "
                         f"{report.failures[ref.source]}")

        recorded(plan, report, "silver", [ref.source], merge)

    queries = []
    if "bronze" in layers:
        queries = run_bronze(spark, plan, report, progress, available_now=False,
                             on_commit=merge_table if "silver" in layers else None)
    progress(f"streaming every {plan.trigger_seconds}s; Ctrl-C to stop")
    try:
        while not stop.wait(plan.trigger_seconds):
            if "bronze" not in layers and "silver" in layers:
                for ref in plan.tables:
                    merge_table(ref)
            if "gold" in layers:
                recorded(plan, report, "gold", ["gold"], lambda: run_gold(spark, plan, report, progress))
            for ref, query in queries:
                if query.exception() is not None:
                    report.failures[ref.source] = f"bronze: {failure_reason(query.exception())}"
    except KeyboardInterrupt:
        progress("stopping ...")
    finally:
        for _, query in queries:
            query.stop()
    return report


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true or raise after ``timeout`` seconds, naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LakehouseError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
