"""The runner reports a failing bronze query with Spark's own reason, in one line."""

from __future__ import annotations

from pyspark.errors import StreamingQueryException

from cdclake.lakehouse import bronze, runner
from tests.lakehouse.test_units import plan

REASON = ("[STREAM_FAILED] Query [id = 7, runId = 8] terminated with exception: "
          "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: cdc.users")


class FailedQuery(StreamingQueryException):
    """PySpark's StreamingQueryException as a failed query raises it: desc, stackTrace, no getMessage()."""

    def __init__(self, desc: str) -> None:  # the real one needs a JVM
        self.desc, self.stackTrace, self.cause, self._origin = desc, "at org.apache.spark.sql...", None, None

    def __str__(self) -> str:
        return f"{self.desc}\n\nJVM stacktrace:\n{self.stackTrace}"


class Query:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def awaitTermination(self) -> None:  # noqa: N802 - PySpark's name
        raise self.error

    def exception(self) -> Exception:
        return self.error


def test_failing_bronze_query_reports_sparks_reason_in_one_line(monkeypatch):
    error = FailedQuery(REASON + "\n\tat org.apache.spark.sql.execution.streaming.StreamExecution")
    assert not hasattr(error, "getMessage")
    monkeypatch.setattr(runner, "topic_partitions", lambda bootstrap, topics: {})
    monkeypatch.setattr(bronze, "start", lambda *args, **kwargs: Query(error))
    report = runner.RunReport(["bronze"])
    runner.run_bronze(None, plan(), report, progress=lambda message: None)
    assert report.failures == {"public.users": f"bronze: {REASON}", "sales.orders": f"bronze: {REASON}"}


def test_failure_reason_of_other_errors():
    assert runner.failure_reason(ValueError("bad\nsecond line")) == "bad"
    assert runner.failure_reason(KeyError()) == "KeyError"


class DrainedQuery:
    recentProgress = [{"numInputRows": 5}, {"numInputRows": 7}]  # noqa: N815 - PySpark's name

    def awaitTermination(self) -> None:  # noqa: N802
        return None


def test_bronze_reports_tables_done_of_total_with_events(monkeypatch):
    monkeypatch.setattr(runner, "topic_partitions", lambda bootstrap, topics: {})
    monkeypatch.setattr(bronze, "start", lambda *args, **kwargs: DrainedQuery())
    lines = []
    runner.run_bronze(None, plan(), runner.RunReport(["bronze"]), progress=lines.append)
    assert [line.split(":")[1].split(",")[0] for line in lines] == [" 1/2 tables (50%)", " 2/2 tables (100%)"]
    assert "ETA" in lines[0] and "/s" not in lines[0]
    assert lines[-1].endswith(": cdc_db.bronze_sales__orders drained cdc.sales__orders (12 events)")


def test_meter_shows_done_of_total_rate_and_eta():
    from cdclake.progress import Meter

    meter = Meter("load", 6000, "changes", start=0.0)
    assert meter.line(1200, now=6.0) == "load: 1200/6000 changes (20%), 200/s, ETA 24s"
    assert Meter("load", 0, "changes", start=0.0).line(10, "x", now=1.0) == "load: 10/? changes, 10/s: x"
