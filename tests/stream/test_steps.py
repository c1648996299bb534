"""Step logic on decoded events, no Kafka."""

import json

import pytest

from cdclake.stream.configuration import Input
from cdclake.stream.exceptions import HookError, StepFailedError
from cdclake.stream.steps import Chain, load_hook
from cdclake.stream.table import Table

ALICE = {"id": 1, "name": "alice", "department_id": 10, "salary": 100, "role": "admin", "__op": "c", "__lsn": 5}
BOB = {"id": 2, "name": "bob", "department_id": 99, "salary": None, "role": "dev", "__op": "c", "__lsn": 6}
CAROL = {"id": 3, "name": "carol", "department_id": 10, "salary": 300, "role": "dev", "__op": "u", "__lsn": 7}


def departments() -> Table:
    table = Table("departments", "cdc.departments", "chg")
    table.apply((10,), {"id": 10, "name": "sales", "budget": "5.00", "__op": "r"}, (0, 0))
    return table


def chain(*steps, tables=None) -> Chain:
    return Chain(Input(topic="cdc.users", steps=list(steps)), "bronze.users",
                 {"departments": departments()} if tables is None else tables)


def run(c: Chain, event: dict):
    result = c.process(json.dumps(event).encode())
    return None if result is None else (result[0], json.loads(result[1]))


def test_filter_by_op_forwards_the_input_bytes_unchanged():
    c = chain({"filter": {"op": ["c"]}})
    raw = b'{"id": 1,  "__op": "c", "x": 1.50}'
    assert c.process(raw) == ("bronze.users", raw)
    assert run(c, CAROL) is None
    assert c.snapshot()[0] == {"step": "1:filter", "in": 2, "out": 1, "filtered": 1, "failed": 0}


@pytest.mark.parametrize("where, kept", [
    ([{"column": "salary", "gt": 150}], [3]),
    ([{"column": "salary", "le": 150}], [1]),  # null salary never satisfies an ordering (SQL-like)
    ([{"column": "salary", "is_null": True}], [2]),
    ([{"column": "role", "in": ["admin", "ops"]}], [1]),
    ([{"column": "role", "not_in": ["admin"]}], [2, 3]),
    ([{"column": "role", "ne": "admin"}, {"column": "department_id", "eq": 10}], [3]),
    ([{"column": "missing", "eq": None}], [1, 2, 3]),
])
def test_filter_by_predicate(where, kept):
    c = chain({"filter": {"where": where}})
    assert [e["id"] for e in (ALICE, BOB, CAROL) if run(c, e)] == kept


def test_enrich_is_a_left_join_with_the_listed_fields():
    c = chain({"filter": {"op": ["c"]}},
              {"enrich": {"table": "departments", "key": "department_id", "fields": ["name", "budget"]}})
    assert c.columns == ["__op", "department_id"]  # the column path: only these are decoded
    assert run(c, ALICE) == ("bronze.users", {**ALICE, "departments_name": "sales", "departments_budget": "5.00"})
    assert run(c, BOB) == ("bronze.users", {**BOB, "departments_name": None, "departments_budget": None})


def test_enrich_without_fields_adds_every_non_metadata_column():
    c = chain({"enrich": {"table": "departments", "key": ["department_id"], "prefix": "d_"}})
    assert c.columns is None
    assert run(c, ALICE)[1] == {**ALICE, "d_id": 10, "d_name": "sales", "d_budget": "5.00"}
    assert run(c, BOB)[1] == BOB


def test_enrich_sees_table_updates_and_deletes():
    table = departments()
    c = chain({"enrich": {"table": "departments", "key": "department_id", "fields": ["name"]}},
              tables={"departments": table})
    assert run(c, ALICE)[1]["departments_name"] == "sales"
    table.apply((10,), {"id": 10, "name": "revenue"}, (0, 1))
    assert run(c, ALICE)[1]["departments_name"] == "revenue"
    table.apply((10,), None, (0, 2))
    assert run(c, ALICE)[1]["departments_name"] is None


def test_column_path_and_whole_value_path_agree():
    steps = [{"filter": {"op": ["c", "u"], "where": [{"column": "salary", "ge": 0}]}},
             {"enrich": {"table": "departments", "key": "department_id", "fields": ["name"]}},
             {"route": [{"to": "bronze.rich", "when": [{"column": "salary", "gt": 200}]}, {"to": "bronze.users"}]}]
    fast = chain(*steps)
    slow = chain(*steps)
    slow._fast = False
    for event in (ALICE, BOB, CAROL):
        assert run(fast, event) == run(slow, event)
    assert fast.snapshot() == slow.snapshot()
    # A value that already holds an added column takes the whole-value path: no duplicate key.
    clash = {**ALICE, "departments_name": "stale"}
    assert fast.process(json.dumps(clash).encode())[1].count(b"departments_name") == 1


def test_project_keeps_metadata_drops_and_renames():
    c = chain({"project": {"keep": ["id", "name", "salary"], "drop": ["salary"], "rename": {"name": "user_name"}}})
    assert run(c, ALICE)[1] == {"id": 1, "user_name": "alice", "__op": "c", "__lsn": 5}
    c = chain({"project": {"keep": ["id"], "keep_metadata": False}})
    assert run(c, ALICE)[1] == {"id": 1}


def test_route_by_predicate_first_match_wins_unmatched_is_filtered():
    c = chain({"route": [{"to": "bronze.admins", "when": [{"column": "role", "eq": "admin"}]},
                         {"to": "bronze.sales", "when": [{"column": "department_id", "eq": 10}]}]})
    assert run(c, ALICE)[0] == "bronze.admins"
    assert run(c, CAROL)[0] == "bronze.sales"
    assert run(c, BOB) is None
    assert c.snapshot()[-1] == {"step": "1:route", "in": 3, "out": 2, "filtered": 1, "failed": 0}


def test_hooks_transform_filter_and_fail_into_the_dead_letter_path():
    c = chain({"hook": "tests.stream.hooks:drop_odd"}, {"hook": "tests.stream.hooks:shout"},
              {"filter": {"hook": "tests.stream.hooks:is_admin"}})
    assert run(c, ALICE) is None  # odd id
    assert run(c, {**BOB, "role": "admin"})[1]["name"] == "BOB"
    failing = chain({"filter": {"op": ["c"]}}, {"hook": "tests.stream.hooks:explode"})
    with pytest.raises(StepFailedError, match="step 2:hook failed: RuntimeError: cannot handle user 1") as info:
        failing.process(json.dumps(ALICE).encode())
    assert info.value.step == "2:hook"
    assert failing.snapshot()[1] == {"step": "2:hook", "in": 1, "out": 0, "filtered": 0, "failed": 1}


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"id": 1', b"\xff\xfe", b'"text"'])
def test_undecodable_values_are_poison(raw):
    for c in (chain({"filter": {"op": ["c"]}}), chain({"hook": "tests.stream.hooks:shout"})):
        with pytest.raises(StepFailedError) as info:
            c.process(raw)
        assert info.value.step == "decode"
        assert c.snapshot()[0]["failed"] == 1


def test_type_error_in_a_predicate_is_poison_not_a_crash():
    c = chain({"filter": {"where": [{"column": "salary", "gt": 10}]}})
    with pytest.raises(StepFailedError, match="1:filter"):
        run(c, {**ALICE, "salary": "lots"})


def test_missing_hook_says_how_to_fix():
    with pytest.raises(HookError, match="cannot import module no_such_module"):
        load_hook("no_such_module:f")
    with pytest.raises(HookError, match="has no function nope"):
        load_hook("tests.stream.hooks:nope")


def test_standard_library_fallback_gives_the_same_bytes(monkeypatch):
    from cdclake.stream import codec

    steps = [{"filter": {"op": ["c"]}},
             {"enrich": {"table": "departments", "key": "department_id", "fields": ["name"]}}]
    with_msgspec = chain(*steps)
    monkeypatch.setattr(codec, "msgspec", None)
    without = chain(*steps)
    for event in (ALICE, BOB, CAROL):
        raw = json.dumps(event).encode()
        assert without.process(raw) == with_msgspec.process(raw)
    with pytest.raises(StepFailedError):
        without.process(b"[1]")
