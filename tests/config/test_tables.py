"""A table's identity (config/tables.py): parsing and folding as PostgreSQL does, the one
naming function for lake names and topics, and what the connector is given."""

from __future__ import annotations

import copy
import pickle
import re
from urllib.parse import unquote

import pytest

from cdclake.config import ConfigError, Pipeline, load
from cdclake.config import tables as naming
from cdclake.config.tables import (
    TableId,
    TableNameError,
    from_include_pattern,
    include_pattern,
    lake_name,
    quote,
    topic_name,
)
from tests.conftest import write_config


@pytest.mark.parametrize("text, schema, name, spelled", [
    ("users", "public", "users", "public.users"),
    ("Users", "public", "users", "public.users"),              # unquoted folds to lower case
    ("Sales.Orders", "sales", "orders", "sales.orders"),
    ('sales."Sales Lines"', "sales", "Sales Lines", 'sales."Sales Lines"'),
    ('"select"', "public", "select", 'public."select"'),       # a reserved word stays quoted
    ('"Straße"', "public", "Straße", 'public."Straße"'),
    ("straße", "public", "straße", 'public."straße"'),         # only ASCII letters fold, as in UTF-8 PG
    ('"a.b"."c""d"', "a.b", 'c"d', '"a.b"."c""d"'),             # a dot and a doubled quote inside quotes
    ("_x$1.t", "_x$1", "t", '"_x$1".t'),
])
def test_names_parse_and_fold_as_postgresql_does(text, schema, name, spelled):
    table = TableId.parse(text)
    assert (table.schema, table.name, str(table)) == (schema, name, spelled)
    assert TableId.parse(str(table)) == table  # the spelling parses back to the same table


@pytest.mark.parametrize("text, message", [
    ("a.b.c", "3 dot-separated parts"),
    ("sales.Sales Lines", r"""write it in double quotes .*- 'sales."Sales Lines"'"""),
    ('"open', "not closed"),
    ('""', "cannot be empty"),
    ('a."b"c', "after a quoted name"),
    ("a..b", "not a plain identifier"),
])
def test_bad_names_are_refused_with_the_fix(text, message):
    with pytest.raises(TableNameError, match=message):
        TableId.parse(text)


def test_quote_is_postgresql_quote_ident():
    assert [quote(n) for n in ("users", "Users", "select", "my table", 'a"b', "ß", "x1_$")] == \
        ["users", '"Users"', '"select"', '"my table"', '"a""b"', '"ß"', '"x1_$"']


def test_a_table_id_survives_copy_and_pickle_with_its_parts():
    table = TableId.parse('s."A b"')
    for clone in (copy.deepcopy(table), pickle.loads(pickle.dumps(table))):
        assert (clone.schema, clone.name) == ("s", "A b") and clone == table


def test_lake_names_are_legal_readable_and_unique():
    names = ["public.sales_orders", "sales.orders", "public.orders", "sales_x.orders", 'sales."Sales Lines"',
             'sales."sales lines"', "sales.sales_lines", 'public."Straße"', 'public."select"', 'public."a__b"',
             'public."表"', 'sales."Orders"']
    stems = {n: lake_name(TableId.parse(n)) for n in names}
    assert len(set(stems.values())) == len(names), stems
    assert all(re.fullmatch(r"[a-z0-9_]+", s) for s in stems.values())
    # Plain names keep today's readable form; only a schema other than public is added.
    assert stems["public.sales_orders"] == "sales_orders" and stems["sales.orders"] == "sales__orders"
    assert stems["public.\"select\""] == "select"
    assert re.fullmatch(r"sales__sales_lines_[0-9a-f]{8}", stems['sales."Sales Lines"'])
    assert re.fullmatch(r"strasse_[0-9a-f]{8}", stems['public."Straße"'])
    # Deterministic: the same table always gets the same name (stored tables depend on it).
    assert lake_name(TableId("sales", "Sales Lines")) == "sales__sales_lines_68a3ee36"


def test_a_lake_name_collision_is_refused_naming_both_tables(monkeypatch, tmp_path):
    monkeypatch.setattr(naming, "lake_name", lambda table: "same")
    with pytest.raises(ConfigError, match=r"tables public.a and public.b would both be stored as 'same'; rename"):
        load(write_config(tmp_path, {"source": {"tables": ["a", "b"]}}), environ={})


def test_a_topic_too_long_for_kafka_is_refused(tmp_path):
    doc = {"source": {"tables": ["t"]}, "kafka": {"topic_prefix": "p" * 248}}
    with pytest.raises(ConfigError, match="longer than Kafka's 249 characters; shorten kafka.topic_prefix"):
        load(write_config(tmp_path, doc), environ={})


def test_topic_names_with_a_dotted_prefix_agree_everywhere():
    from cdclake.capture.connector import table_topics
    from cdclake.lakehouse.configuration import plan_from_pipeline
    from cdclake.stream.configuration import StreamConfig

    pipeline = Pipeline.model_validate({"source": {"tables": ["users", "sales.orders", 'sales."Sales Lines"']},
                                        "kafka": {"topic_prefix": "prod.cdc"}})
    topics = table_topics(pipeline)
    assert list(topics.values())[:2] == ["prod.cdc.users", "prod.cdc.sales__orders"]
    assert [r.topic for r in plan_from_pipeline(pipeline).tables] == list(topics.values())
    # Exactly one segment after the prefix, so the stream layer's default output finds the table.
    assert all(t.count(".") == 2 for t in topics.values())
    assert StreamConfig().default_output("prod.cdc.sales__orders") == "bronze.sales__orders"
    bronze_in = pipeline.model_copy(update={"lakehouse": pipeline.lakehouse.model_copy(
        update={"input_topic_prefix": "enriched.v1"})})
    assert [r.topic for r in plan_from_pipeline(bronze_in).tables][:2] == ["enriched.v1.users",
                                                                           "enriched.v1.sales__orders"]


def test_include_patterns_have_no_literal_separator_and_parse_back():
    for table in (TableId("sales", "Sales Lines, 2024"), TableId("a.b", "c:d;e"), TableId("public", "Straße")):
        pattern = include_pattern(table)
        assert pattern.startswith("(?-i)")  # Debezium matches case-insensitively unless told
        assert not re.search(r"[ ,:;]", pattern.removeprefix("(?-i)"))
        assert from_include_pattern(pattern) == table
    assert from_include_pattern(r"public\.users") == TableId("public", "users")  # a connector from before


def test_the_connector_captures_routes_and_keys_quoted_tables(tmp_path):
    from cdclake.capture.connector import ROUTER, connector_config

    doc = {"source": {"tables": ['sales."Sales Lines"', "users"], "key_columns": {'sales."Sales Lines"': ["Line No"]}},
           "kafka": {"topic_prefix": "cdc"}}
    config = connector_config(load(write_config(tmp_path, doc), environ={}))
    assert config["table.include.list"].split(",")[:2] == [r"(?-i)sales\.Sales\x{20}Lines", r"(?-i)public\.users"]
    assert config["transforms"].split(",")[0] == "route" and config["transforms.route.type"] == ROUTER
    routes = {}
    for entry in config["transforms.route.topics"].split(","):
        table, topic = entry.split("=")
        schema, name = table.split(".")
        routes[(unquote(schema), unquote(name))] = topic
    assert routes[("sales", "Sales Lines")] == f"cdc.{lake_name(TableId('sales', 'Sales Lines'))}"
    assert routes[("public", "users")] == "cdc.users"
    assert config["message.key.columns"] == r"(?-i)sales\.Sales\x{20}Lines:Line\x{20}No"


def test_quoted_names_are_accepted_in_every_table_keyed_section(tmp_path):
    doc = {"source": {"tables": ['sales."Sales Lines"'], "key_columns": {'Sales."Sales Lines"': ["id"]}},
           "monitoring": {"tables": {'sales."Sales Lines"': {"warn_after_seconds": 5, "error_after_seconds": 9}}}}
    pipeline = load(write_config(tmp_path, doc), environ={})
    table = pipeline.source.tables[0]
    assert pipeline.source.key_columns == {table: ["id"]}
    assert pipeline.monitoring.objective(table).warn_after_seconds == 5
    assert pipeline.source.resolve_table('SALES."Sales Lines"') == table
    with pytest.raises(ConfigError, match="unknown table 'sales.\"sales lines\"'"):
        pipeline.source.resolve_table('sales."sales lines"')


def test_a_table_list_keeps_commas_inside_quotes():
    assert naming.split_list('users, sales."a,b",x."""q,"""') == ["users", 'sales."a,b"', 'x."""q,"""']


def test_silver_reads_columns_whose_names_hold_quotes():
    from cdclake.lakehouse import silver

    assert silver.literal("`it's` STRING, `a\\b` STRING") == "'`it\\'s` STRING, `a\\\\b` STRING'"
