"""KTable semantics of the join tables, no Kafka."""

import pytest

from cdclake.stream.table import Table, parse_key, parse_row


def test_keys_and_rows_parse_like_debezium_writes_them():
    assert parse_key(b'{"id": 3}') == (3,)
    assert parse_key(b'{"a": 1, "b": "x"}') == (1, "x")
    assert parse_row(b'{"id": 3, "__op": "c", "__deleted": "false"}') == {"id": 3, "__op": "c", "__deleted": "false"}
    assert parse_row(b'{"id": 3, "__op": "d", "__deleted": "true"}') is None
    assert parse_row(None) is None
    with pytest.raises(ValueError):
        parse_key(None)
    with pytest.raises(ValueError):
        parse_row(b"[1]")


def test_latest_version_per_key_wins_and_older_echoes_are_ignored():
    table = Table("d", "cdc.d", "chg")
    assert table.apply((1,), {"name": "a"}, (0, 5))
    assert not table.apply((1,), {"name": "old"}, (0, 4))  # a changelog echo of an older change
    assert table.get((1,)) == {"name": "a"}
    assert table.apply((1,), {"name": "b"}, (0, 6))
    assert table.apply((1,), None, (0, 7))
    assert table.get((1,)) is None and len(table) == 0


def test_truncate_removes_older_rows_keeps_newer_and_refuses_older_changes_later():
    table = Table("d", "cdc.d", "chg")
    table.apply((1,), {"name": "a", "__lsn": 10}, (0, 1), b'{"id": 1}')
    table.apply((2,), {"name": "b", "__lsn": 30}, (1, 1), b'{"id": 2}')  # after the TRUNCATE, read first
    assert table.truncate(20) == [b'{"id": 1}']
    assert table.get((1,)) is None and table.get((2,)) == {"name": "b", "__lsn": 30}
    assert not table.apply((3,), {"name": "late", "__lsn": 15}, (2, 1))  # older, from a slower partition
    assert table.apply((3,), {"name": "new", "__lsn": 25}, (2, 2))
    assert sorted(table.rows) == [(2,), (3,)]


def test_a_truncate_event_is_recognised_by_its_op_and_needs_an_lsn():
    from cdclake.stream.table import truncate_lsn

    assert truncate_lsn(b'{"__op": "t", "__lsn": 42, "__table": "d"}') == 42
    assert truncate_lsn(b'{"id": 1, "flag": "t", "__op": "c", "__lsn": 5}') is None
    assert truncate_lsn(None) is None
    with pytest.raises(ValueError, match="__lsn"):
        truncate_lsn(b'{"__op": "t"}')
