"""A local Spark logs to a file under the state dir; --debug brings its logs back to the console."""

from __future__ import annotations

import dataclasses

from cdclake.lakehouse.spark import as_spark_conf, log_file, log_to_file
from tests.lakehouse.test_units import plan


def test_local_spark_logs_to_a_file_named_by_the_plan(tmp_path):
    logs = log_file(plan(log_dir=tmp_path / "logs"))
    assert logs == tmp_path / "logs" / "spark.log"
    config = log_to_file(logs)
    assert f"appender.file.fileName = {logs}" in config.read_text()
    options = as_spark_conf(plan(), log_config=config)["spark.driver.extraJavaOptions"]
    assert options == f"-Duser.timezone=UTC -Dlog4j2.configurationFile={config.as_uri()}"


def test_no_log_dir_or_a_cluster_keeps_sparks_own_logging(tmp_path):
    assert log_file(plan()) is None
    assert log_file(plan(log_dir=tmp_path, spark_master="yarn")) is None
    assert as_spark_conf(plan())["spark.driver.extraJavaOptions"] == "-Duser.timezone=UTC"


def test_debug_sends_engine_logs_to_the_console(tmp_path):
    import yaml

    from cdclake.cli import Context

    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({"source": {"tables": ["users"]}}))
    quiet = Context(tmp_path / "pipeline.yaml", "text", debug=False, overrides={}).plan()
    loud = Context(tmp_path / "pipeline.yaml", "text", debug=True, overrides={}).plan()
    assert quiet.log_dir == tmp_path / ".cdclake" / "logs" and loud.log_dir is None
    assert dataclasses.replace(quiet, log_dir=None) == loud
