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
