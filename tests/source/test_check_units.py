"""Unit tests of `source check`'s per-table verdicts and the grants init, check and drop share (no database)."""

from __future__ import annotations

import pytest

from cdclake.source.check import _table_finding
from cdclake.source.prepare import grants


@pytest.mark.parametrize("row, keyed, ok, fix", [
    (("d", True), False, True, ""),
    (("i", False), False, True, ""),
    (("n", True), False, False, "ALTER TABLE s.t REPLICA IDENTITY DEFAULT"),
    (("d", False), False, False, "ALTER TABLE s.t ADD PRIMARY KEY (...), or name a unique column set"),
    (("d", False), True, False, "ALTER TABLE s.t REPLICA IDENTITY FULL"),
    (("f", False), True, True, ""),
    (None, False, False, "create it, or remove it from source.tables"),
])
def test_each_table_gets_a_verdict_and_its_fix(row, keyed, ok, fix):
    finding = _table_finding("s.t", row, keyed)
    assert finding.ok is ok and finding.fix.startswith(fix)


def test_the_capture_role_gets_reads_on_the_tables_and_writes_only_on_cdclakes_own():
    from cdclake.config.tables import TableId

    tables = [TableId.parse(t) for t in ("public.a", "shop.b", "cdc.heartbeat", "cdc.debezium_signal")]
    granted = grants("shop", tables, "cdc")
    writes = [(p, target) for p, kind, target in granted if p != "SELECT" and kind == "table"]
    assert writes == [("INSERT, UPDATE", "cdc.heartbeat"), ("INSERT, UPDATE, DELETE", "cdc.debezium_signal")]
    assert ("CONNECT", "database", "shop") in granted and ("USAGE", "schema", "shop") in granted
    assert {t for p, k, t in granted if p == "SELECT"} == {"public.a", "shop.b", "cdc.heartbeat", "cdc.debezium_signal"}
