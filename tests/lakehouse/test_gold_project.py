"""Unit tests of the gold project: ref()/source() parsing, build order, selectors, YAML tests (no JVM)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cdclake.lakehouse import gold
from cdclake.lakehouse.configuration import TableRef
from cdclake.lakehouse.exceptions import ModelError
from cdclake.lakehouse.gold.datatests import failing_rows
from cdclake.lakehouse.gold.project import BUNDLED_MODELS
from tests.lakehouse.test_units import plan


def project_of(tmp_path: Path, files: dict[str, str], **kw) -> gold.Project:
    (tmp_path / "gold").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "gold" / name).write_text(text)
    return gold.load_project(plan(models_dir=tmp_path, **kw))


CHAIN = {
    "z_base.sql": "SELECT id FROM {{ source('public', 'users') }}",
    "m_mid.sql": "SELECT id FROM {{ ref('z_base') }} JOIN {{ source('sales', 'orders') }} o ON o.id = id",
    "a_top.sql": "SELECT count(*) AS n FROM {{ ref('gold_m_mid') }}",
    "lone.sql": "SELECT 1 AS one FROM {{ users }}",
}


def test_models_are_ordered_parents_first_whatever_their_names(tmp_path: Path):
    project = project_of(tmp_path, CHAIN)
    order = list(project.models)
    assert order.index("gold_z_base") < order.index("gold_m_mid") < order.index("gold_a_top")
    assert project.ancestors("gold_a_top") == ["gold_m_mid", "gold_z_base"]
    assert project.models["gold_m_mid"].refs == ["gold_z_base"]
    assert project.models["gold_m_mid"].inputs == ["sales.orders"]


def test_select_one_model_its_ancestors_or_its_descendants(tmp_path: Path):
    project = project_of(tmp_path, CHAIN)
    assert [m.name for m in project.select(["a_top"])] == ["gold_a_top"]
    assert [m.name for m in project.select(["+gold_a_top"])] == ["gold_z_base", "gold_m_mid", "gold_a_top"]
    assert [m.name for m in project.select(["m_mid+"])] == ["gold_m_mid", "gold_a_top"]
    assert len(project.select()) == 4
    known = "gold_a_top, gold_lone, gold_m_mid, gold_z_base"
    with pytest.raises(ModelError, match=f"unknown gold model 'gold_nope' in --select; models: {known}"):
        project.select(["nope"])


def test_a_cycle_is_an_error_naming_it(tmp_path: Path):
    with pytest.raises(ModelError, match=r"cycle: gold_a -> gold_b -> gold_a; remove one"):
        project_of(tmp_path, {"a.sql": "SELECT * FROM {{ ref('b') }}", "b.sql": "SELECT * FROM {{ ref('a') }}"})


def test_an_unknown_ref_names_the_model_the_line_and_the_known_models(tmp_path: Path):
    files = {**CHAIN, "typo.sql": "-- a comment\nSELECT *\nFROM {{ ref('user_stat') }}"}
    with pytest.raises(ModelError) as caught:
        project_of(tmp_path, files)
    assert str(caught.value) == (f"{tmp_path}/gold/typo.sql:3: model gold_typo refs unknown model 'gold_user_stat'; "
                                 "known models: gold_a_top, gold_lone, gold_m_mid, gold_typo, gold_z_base")


def test_an_unknown_source_names_the_model_the_line_and_the_configured_tables(tmp_path: Path):
    with pytest.raises(ModelError) as caught:
        project_of(tmp_path, {"x.sql": "SELECT *\nFROM {{ userz }}"},
                   configured_tables=("public.users", "sales.orders"))
    assert str(caught.value) == (f"{tmp_path}/gold/x.sql:2: model gold_x reads unknown source 'userz'; "
                                 "configured tables (source.tables): public.users, sales.orders")


def test_a_configured_table_outside_this_run_skips_its_models_and_their_children(tmp_path: Path):
    p = plan(models_dir=tmp_path, configured_tables=("public.users", "sales.orders", "public.extra"))
    (tmp_path / "gold").mkdir()
    (tmp_path / "gold" / "x.sql").write_text("SELECT * FROM {{ source('extra') }}")
    (tmp_path / "gold" / "y.sql").write_text("SELECT * FROM {{ ref('x') }}")
    (tmp_path / "gold" / "z.sql").write_text("SELECT * FROM {{ source('users') }}")
    project = gold.load_project(p)
    assert list(project.models) == ["gold_z"] and set(project.skipped) == {"gold_x", "gold_y"}
    with pytest.raises(ModelError, match="gold model gold_y cannot run: it refs gold_x"):
        project.select(["y"])


def test_jinja_blocks_and_unknown_expressions_are_errors(tmp_path: Path):
    with pytest.raises(ModelError, match=r"x.sql:1: \{% if true %\} is not supported"):
        project_of(tmp_path, {"x.sql": "{% if true %}SELECT * FROM {{ users }}"})
    with pytest.raises(ModelError, match=r"y.sql:1: cannot read \{\{ config\(materialized='view'\) \}\}"):
        (tmp_path / "two").mkdir()
        project_of(tmp_path / "two", {"y.sql": "SELECT * FROM {{ config(materialized='view') }}"})


def test_render_for_postgres_reads_parents_as_temporary_views(tmp_path: Path):
    project = project_of(tmp_path, CHAIN)
    p = plan(models_dir=tmp_path)
    top = project.models["gold_a_top"]
    assert gold.render_postgres(top, p) == 'SELECT count(*) AS n FROM pg_temp."gold_m_mid"'
    assert gold.postgres_views(project, top, p) == [
        'CREATE TEMPORARY VIEW "gold_z_base" AS SELECT id FROM public.users',
        'CREATE TEMPORARY VIEW "gold_m_mid" AS SELECT id FROM pg_temp."gold_z_base" '
        'JOIN sales.orders o ON o.id = id']
    spark_sql = gold.render_spark(project.models["gold_m_mid"], p, {"lake.cdc_db.silver_sales__orders": 9},
                                  {"gold_z_base": 4})
    assert spark_sql == ("SELECT id FROM lake.cdc_db.gold_z_base VERSION AS OF 4 JOIN "
                         "lake.cdc_db.silver_sales__orders VERSION AS OF 9 o ON o.id = id")


SCHEMA = """
version: 2
models:
  - name: base
    description: The users.
    columns:
      - name: id
        description: the key
        data_tests: [not_null, unique]
      - name: kind
        tests:
          - accepted_values: {values: [a, "it's"]}
          - relationships: {arguments: {to: "ref('other')", field: k}}
  - name: gold_other
"""


def test_yaml_properties_give_descriptions_and_tests(tmp_path: Path):
    project = project_of(tmp_path, {"base.sql": "-- from the comment\nSELECT * FROM {{ users }}",
                                    "other.sql": "-- Other.\nSELECT 1 AS k FROM {{ users }}", "schema.yml": SCHEMA})
    base = project.models["gold_base"]
    assert base.description == "The users." and project.models["gold_other"].description == "Other."
    assert base.columns == {"id": "the key", "kind": ""}
    assert [t.label for t in base.tests] == ["not_null(id)", "unique(id)", "accepted_values(kind)",
                                             "relationships(kind)"]
    assert base.refs == ["gold_other"] and list(project.models).index("gold_other") == 0  # the test's parent first
    assert failing_rows(base.tests[2], "v", str) == "SELECT DISTINCT `kind` FROM v WHERE `kind` NOT IN ('a', 'it\\'s')"
    relationship = failing_rows(base.tests[3], "v", lambda r: f"T<{r.name}>")
    assert "LEFT JOIN (SELECT `k` AS __parent FROM T<gold_other>) p" in relationship


@pytest.mark.parametrize("yaml_text, message", [
    ("models:\n  - name: nope\n", r"describes unknown model 'nope'; models: gold_base"),
    ("models:\n  - name: base\n    columns:\n      - name: id\n        data_tests: [non_null]\n",
     r"model gold_base column id: unknown test 'non_null'; known tests: not_null, unique"),
    ("models:\n  - name: base\n    columns:\n      - name: id\n        data_tests: [relationships]\n",
     r"relationships needs `to: ref\('model'\)`"),
    ("models: {base: 1}\n", r"expected `models:` as a list"),
])
def test_bad_yaml_properties_are_errors_naming_the_file(tmp_path: Path, yaml_text: str, message: str):
    with pytest.raises(ModelError, match=message):
        project_of(tmp_path, {"base.sql": "SELECT * FROM {{ users }}", "schema.yml": yaml_text})


def test_bundled_models_skip_quietly_when_the_demo_tables_are_not_configured():
    accounts = TableRef("public.accounts", "cdc.accounts", "lake", "cdc_db")
    project = gold.load_project(dataclasses.replace(plan(), tables=(accounts,), models_dir=BUNDLED_MODELS,
                                                    configured_tables=("public.accounts",)))
    assert not project.models and set(project.skipped) == {"gold_user_stats", "gold_revenue_by_product_day",
                                                           "gold_segment_summary"}
