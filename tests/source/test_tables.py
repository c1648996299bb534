"""``source init``'s table checks (source/prepare.py), on a stand-in for pg_class's answers."""

from __future__ import annotations

import pytest

from cdclake.config.tables import TableId
from cdclake.source.exceptions import MissingKeyError
from cdclake.source.prepare import check_tables


def ids(*names: str) -> list[TableId]:
    return [TableId.parse(n) for n in names]


class Catalog:
    """Answers TABLE_FACTS_SQL: (relreplident, has a primary key) per table."""

    def __init__(self, facts: dict[str, tuple[str, bool]]):
        self.facts = facts

    def execute(self, _sql, params):
        row = self.facts.get(".".join(params))
        return type("Result", (), {"fetchone": lambda _self: row})()


def test_a_keyless_table_with_replica_identity_full_is_carried_as_a_multiset():
    catalog = Catalog({"public.users": ("d", True), "public.log": ("f", False), "public.audit": ("f", False)})
    keyless = check_tables(catalog, ids("public.users", "public.log", "public.audit"), {"public.audit": ["at"]})
    assert keyless == ["public.log"]


@pytest.mark.parametrize("identity, spelled", [("d", "DEFAULT"), ("n", "NOTHING"), ("i", "USING INDEX")])
def test_a_keyless_table_without_full_identity_is_refused_with_the_fix(identity, spelled):
    with pytest.raises(MissingKeyError) as err:
        check_tables(Catalog({"public.log": (identity, False)}), ids("public.log"))
    message = str(err.value)
    assert err.value.tables == ["public.log"]
    assert f"public.log has no primary key and REPLICA IDENTITY {spelled}" in message
    assert "ALTER TABLE public.log REPLICA IDENTITY FULL" in message and "multiset" in message


def test_key_columns_without_full_identity_are_refused():
    with pytest.raises(MissingKeyError, match="keyed by source.key_columns .* REPLICA IDENTITY FULL"):
        check_tables(Catalog({"public.log": ("d", False)}), ids("public.log"), {"public.log": ["at"]})
