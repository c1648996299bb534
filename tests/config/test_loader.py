import pytest

from cdclake.config import ConfigError, load, mask_dsn, with_password
from tests.conftest import write_config


def test_demo_config_is_valid():
    pipeline = load("pipeline.yaml", environ={})
    assert pipeline.source.tables == ["public.departments", "public.users", "public.products", "public.orders"]
    assert pipeline.kafka.bootstrap == "127.0.0.1:19092"
    assert pipeline.connect.endpoint == "http://127.0.0.1:8083"
    assert pipeline.lakehouse.namespace == "cdc_db"
    assert pipeline.warehouse.startswith("file://") and pipeline.warehouse.endswith("/.cdclake/warehouse")


def test_unknown_key_names_file_key_and_suggests(tmp_path):
    path = write_config(tmp_path, {"kafka": {"nodez": 3}})
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    assert str(path) in str(err.value)
    assert "kafka.nodez: unknown key; did you mean 'nodes'?" in str(err.value)
    assert err.value.key == "kafka.nodez"


def test_unknown_section(tmp_path):
    path = write_config(tmp_path, {"kafak": {}})
    with pytest.raises(ConfigError, match="kafak: unknown key; did you mean 'kafka'"):
        load(path, environ={})


def test_bad_value_names_the_key_and_the_value(tmp_path):
    path = write_config(tmp_path, {"kafka": {"nodes": 2}})
    with pytest.raises(ConfigError, match=r"kafka\.nodes: Input should be 1 or 3 \(got 2\)"):
        load(path, environ={})


def test_invalid_yaml_gives_line(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("source:\n  tables: [a, b\nkafka: {}\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: invalid YAML"):
        load(path, environ={})


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="no such config file; pass -c/--config"):
        load(tmp_path / "nope.yaml", environ={})


def test_literal_password_is_refused_without_echoing_it(tmp_path):
    path = write_config(tmp_path, {"source": {"dsn": "postgresql://u@h/db", "password": "hunter2"}})
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    assert "CDCLAKE__SOURCE__PASSWORD" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_password_in_dsn_is_refused_without_echoing_it(tmp_path):
    path = write_config(tmp_path, {"source": {"dsn": "postgresql://u:hunter2@h/db"}})
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    assert "source.dsn" in str(err.value) and "hunter2" not in str(err.value)


def test_env_overrides_file_and_cli_overrides_env(tmp_path):
    path = write_config(tmp_path, {"kafka": {"nodes": 1, "partitions": 6}})
    env = {"CDCLAKE__KAFKA__NODES": "3", "CDCLAKE__KAFKA__PARTITIONS": "12",
           "CDCLAKE__SPARK__CONF__spark.sql.shuffle.partitions": "8"}
    pipeline = load(path, environ=env)
    assert pipeline.kafka.nodes == 3 and pipeline.kafka.partitions == 12
    assert pipeline.kafka.replication_factor == 3
    assert pipeline.spark.conf == {"spark.sql.shuffle.partitions": "8"}
    assert load(path, {"kafka.nodes": 1}, environ=env).kafka.nodes == 1


def test_secret_from_env_is_masked_everywhere(tmp_path):
    path = write_config(tmp_path, {"source": {"dsn": "postgresql://admin@db.example:5432/cdc_demo"}})
    pipeline = load(path, environ={"CDCLAKE__SOURCE__PASSWORD": "s3cr3t"})
    assert pipeline.source.password.get_secret_value() == "s3cr3t"
    for text in (str(pipeline), repr(pipeline), pipeline.model_dump_json()):
        assert "s3cr3t" not in text
    dsn = with_password(pipeline.source.dsn, pipeline.source.password)
    assert "s3cr3t" in dsn and "s3cr3t" not in mask_dsn(dsn)


def test_password_file(tmp_path):
    (tmp_path / "pw").write_text("from-file\n")
    path = write_config(tmp_path, {"source": {"dsn": "postgresql://admin@h/db", "password_file": "pw"}})
    assert load(path, environ={}).source.password.get_secret_value() == "from-file"


def test_unreadable_password_file(tmp_path):
    path = write_config(tmp_path, {"source": {"dsn": "postgresql://admin@h/db", "password_file": "missing"}})
    with pytest.raises(ConfigError, match="source.password_file: cannot read"):
        load(path, environ={})


def test_external_addresses_replace_managed(tmp_path):
    path = write_config(tmp_path, {"kafka": {"bootstrap_servers": "k1:9092,k2:9092"},
                                   "connect": {"url": "http://dbz:8083/"}})
    pipeline = load(path, environ={})
    assert not pipeline.kafka.is_managed and pipeline.kafka.bootstrap == "k1:9092,k2:9092"
    assert not pipeline.connect.is_managed and pipeline.connect.endpoint == "http://dbz:8083"


def test_managed_and_address_together_is_an_error(tmp_path):
    path = write_config(tmp_path, {"kafka": {"managed": "local", "bootstrap_servers": "k:9092"}})
    with pytest.raises(ConfigError, match="kafka: give either managed: local or bootstrap_servers"):
        load(path, environ={})


def test_table_names_are_qualified_and_checked(tmp_path):
    pipeline = load(write_config(tmp_path, {"source": {"tables": ["users", "sales.orders"]}}), environ={})
    assert pipeline.source.tables == ["public.users", "sales.orders"]
    with pytest.raises(ConfigError, match="source.tables: .*is not a plain identifier; write it in double quotes"):
        load(write_config(tmp_path, {"source": {"tables": ["users; drop table x"]}}), environ={})


def test_key_columns_name_configured_tables_and_reach_debezium_and_silver(tmp_path):
    from cdclake.capture.connector import connector_config
    from cdclake.lakehouse.configuration import plan_from_pipeline

    doc = {"source": {"tables": ["audit", "sales.lines"], "key_columns": {"audit": ["at", "what"]}}}
    pipeline = load(write_config(tmp_path, doc), environ={})
    assert pipeline.source.key_columns == {"public.audit": ["at", "what"]}
    assert connector_config(pipeline)["message.key.columns"] == r"(?-i)public\.audit:at,what"
    assert plan_from_pipeline(pipeline).table("audit").key_columns == ("at", "what")
    assert "message.key.columns" not in connector_config(load("pipeline.yaml", environ={}))
    bad = write_config(tmp_path / "bad", {"source": {"tables": ["audit"], "key_columns": {"other": ["id"]}}})
    with pytest.raises(ConfigError, match="not in source.tables"):
        load(bad, environ={})


def test_replication_factor_below_min_isr_of_the_quorum_is_refused(tmp_path):
    path = write_config(tmp_path, {"kafka": {"nodes": 3, "replication_factor": 1}})
    with pytest.raises(ConfigError, match="below the 3-node cluster's min.insync.replicas=2"):
        load(path, environ={})
    assert load(write_config(tmp_path / "ok", {"kafka": {"nodes": 3}}), environ={}).kafka.replication_factor == 3


def test_two_connect_workers_each_on_its_own_port_in_one_group(tmp_path):
    from cdclake.stack.stack import LocalStack

    pipeline = load(write_config(tmp_path, {"connect": {"port": 8083, "workers": 2}}), environ={})
    connect = LocalStack.of(pipeline).connect
    assert [d.name for d in connect.daemons()] == ["connect", "connect-2"]
    assert [connect.worker_properties(i)["listeners"] for i in (1, 2)] == ["http://127.0.0.1:8083",
                                                                          "http://127.0.0.1:8084"]
    assert {connect.worker_properties(i)["group.id"] for i in (1, 2)} == {"cdclake-connect"}
    assert connect.worker_of("127.0.0.1:8084") == 2 and pipeline.connect.endpoint == "http://127.0.0.1:8083"
    with pytest.raises(ConfigError, match="connect.workers 2 applies to the managed local Connect only"):
        load(write_config(tmp_path / "ext", {"connect": {"url": "http://dbz:8083", "workers": 2}}), environ={})
