"""The parallel initial load's own logic: chunk ranges, which encodings it reproduces, the
JSON it asks PostgreSQL to build (the data itself is checked end to end in test_initial_load.py)."""

from cdclake.config.tables import TableId
from cdclake.lakehouse.initial_load import chunk_predicates, encoding, event_sql, unsupported
from cdclake.lakehouse.pgschema import Column, TableSchema


def column(name: str, pg_type: str, is_array: bool = False, key_pos: int = 0, typmod: int = -1) -> Column:
    return Column(name, pg_type, is_array, typmod, pg_type + ("[]" if is_array else ""), key_pos=key_pos)


def test_the_chunks_cover_every_block_once_and_the_last_is_open_ended():
    ranges = chunk_predicates(10, 3)
    assert ranges == ["__ctid >= '(0,0)'::tid AND __ctid < '(3,0)'::tid",
                      "__ctid >= '(3,0)'::tid AND __ctid < '(6,0)'::tid", "__ctid >= '(6,0)'::tid"]
    assert chunk_predicates(0, 8) == ["__ctid >= '(0,0)'::tid"]  # an empty table: one open range
    assert len(chunk_predicates(3, 8)) == 3  # never more chunks than blocks


def test_types_whose_encoding_is_not_reproduced_are_named():
    schema = TableSchema(TableId.parse("s.t"), (column("id", "int4", key_pos=1), column("tags", "text", True),
                                                column("iv", "interval"), column("m", "money"), column("ok", "jsonb")))
    assert [c.name for c in unsupported(schema)] == ["tags", "iv", "m"]
    assert encoding(column("ts", "timestamp", typmod=3)).count("1000)") == 1  # millis for timestamp(3)


def test_the_event_quotes_names_and_carries_the_envelope():
    schema = TableSchema(TableId.parse('s."T t"'), (column('it\'s "x"', "int4", key_pos=1), column("v", "text")))
    sql = event_sql(TableId.parse('s."T t"'), schema, 42, 7)
    assert """'"it''s \\"x\\"":'""" in sql  # the JSON key, in a SQL literal
    assert 'to_json("it\'s ""x""")' in sql  # the SQL identifier
    assert '"__op":"r"' in sql and '"__lsn":42' in sql and '"__snapshot":"cdclake_load"' in sql
    assert sql.endswith('FROM s."T t"')
