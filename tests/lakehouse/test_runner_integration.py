"""A failing bronze query on real Spark: the run reports Spark's own reason, in one line."""

from __future__ import annotations

import dataclasses

import pytest

from cdclake.lakehouse import runner
from cdclake.lakehouse.configuration import plan_from_pipeline
from tests.conftest import unique
from tests.lakehouse.conftest import lake_pipeline

pytestmark = pytest.mark.integration
BAD_TOPIC = "no such topic!"  # Kafka refuses the name: the query fails inside Spark


def test_failing_bronze_query_reports_sparks_own_message(stack, spark):
    plan = plan_from_pipeline(lake_pipeline(stack, unique("badtopic"), ["t"]))
    ref = dataclasses.replace(plan.tables[0], topic=BAD_TOPIC)
    report = runner.run(spark, dataclasses.replace(plan, tables=(ref,)), ["bronze"], progress=lambda m: None)
    reason = report.failures[ref.source]
    assert reason.startswith("bronze: ") and "\n" not in reason and "AttributeError" not in reason
    assert "[STREAM_FAILED]" in reason and "InvalidTopicException" in reason  # Spark's and Kafka's words
