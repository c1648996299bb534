"""The stream: section of pipeline.yaml."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from cdclake.config import load
from cdclake.config.exceptions import ConfigError
from cdclake.stream.configuration import StreamConfig

ROOT = Path(__file__).resolve().parents[2]

EXAMPLE = {
    "enabled": True,
    "tables": {"departments": {"topic": "cdc.departments"}},
    "inputs": [{"topic": "cdc.users", "steps": [
        {"filter": {"op": ["c"]}},
        {"enrich": {"table": "departments", "key": "department_id", "fields": ["name"]}},
        {"route": [{"to": "bronze.admins", "when": [{"column": "role", "eq": "admin"}]}, {"to": "bronze.users"}]},
    ]}],
}


def test_example_validates_and_names_its_topics():
    config = StreamConfig.model_validate(EXAMPLE)
    assert [step.kind for step in config.inputs[0].steps] == ["filter", "enrich", "route"]
    assert config.inputs[0].steps[1].enrich.key == ["department_id"]
    assert config.output_topics() == ["bronze.admins", "bronze.users"]
    assert config.changelog_topic("departments") == "cdclake-stream.departments-changelog"
    assert config.default_output("cdc.sales__orders") == "bronze.sales__orders"
    # A dotted kafka.topic_prefix: the table's segment is the last one (config/tables.py topic_name).
    assert config.default_output("my.cdc.sales__orders") == "bronze.sales__orders"


def test_demo_pipeline_ships_the_reference_example():
    stream = load(ROOT / "pipeline.yaml", environ={}).stream
    assert stream.inputs[0].topic == "cdc.users" and stream.tables["departments"].topic == "cdc.departments"
    assert [s.kind for s in stream.inputs[0].steps] == ["filter", "enrich", "route"]
    assert stream.inputs[0].steps[0].filter.op == ["c"]
    assert stream.output_topics() == ["bronze.users"]


def test_env_override_turns_the_layer_on(clean_env):
    clean_env.setenv("CDCLAKE__STREAM__ENABLED", "true")
    clean_env.setenv("CDCLAKE__STREAM__PROCESSING_GUARANTEE", "exactly-once")
    stream = load(ROOT / "pipeline.yaml").stream
    assert stream.enabled and stream.processing_guarantee == "exactly-once"


def test_yaml_on_key_gets_a_clear_error(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("stream:\n  tables: {d: {topic: cdc.d}}\n  inputs:\n    - topic: cdc.u\n      steps:\n"
                    "        - enrich: {table: d, on: department_id}\n")
    with pytest.raises(ConfigError, match="YAML reads the key `on` as true; name the join column"):
        load(path, environ={})


def test_unknown_step_key_is_rejected_with_a_suggestion(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"stream": {"inputs": [{"topic": "cdc.u", "steps": [{"filtr": {"op": ["c"]}}]}]}}))
    with pytest.raises(ConfigError, match="stream.inputs.0.steps.0.filtr: unknown key"):
        load(path, environ={})


@pytest.mark.parametrize("doc, message", [
    ({"inputs": [{"topic": "cdc.u", "steps": [{"enrich": {"table": "x", "key": "a"}}]}]},
     "enrich table 'x' is not declared under stream.tables"),
    ({"inputs": [{"topic": "cdc.u", "steps": [{"route": [{"to": "b.u"}]}, {"filter": {"op": ["c"]}}]}]},
     "route must be the last step"),
    ({"inputs": [{"topic": "cdc.u", "steps": [{"filter": {"where": [{"column": "a", "gt": 1, "lt": 5}]}}]}]},
     "needs exactly one of"),
    ({"inputs": [{"topic": "cdc.u", "steps": [{"filter": {"op": ["c"]}, "route": [{"to": "b"}]}]}]},
     "a step is exactly one of"),
    ({"inputs": [{"topic": "cdc.u", "steps": [{"hook": "not a path"}]}]}, "must be 'package.module:function'"),
    ({"inputs": [{"topic": "bad topic!"}]}, "not a valid Kafka topic name"),
    ({"enabled": True}, "no stream.inputs are given"),
    ({"inputs": [{"topic": "cdc.u"}, {"topic": "cdc.u"}]}, "each input topic may appear once"),
])
def test_invalid_configs_say_what_to_fix(doc, message):
    with pytest.raises(ValidationError, match=message):
        StreamConfig.model_validate(doc)


def test_off_by_default():
    assert StreamConfig().enabled is False and StreamConfig().processing_guarantee == "at-least-once"
