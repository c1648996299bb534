"""Reading Debezium's incremental-snapshot position from connector offsets. The hex keys are
real: the first two from a running Debezium 3.6 connector's offsets, the rest written by
Java 17's ObjectOutputStream for the key types PostgreSQL columns map to."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cdclake.capture.snapshot_progress import Unreadable, decode_key, done_share, snapshot_state

OBJECT_ARRAY = "aced0005757200135b4c6a6176612e6c616e672e4f626a6563743b90ce589f1073296c020000787000000001"
LONG = "7372000e6a6176612e6c616e672e4c6f6e673b8be490cc8f23df0200014a000576616c7565787200106a6176612e6c616e672e4e756d62657286ac951d0b94e08b020000787000000000"
AT_9400, MAX_30000 = OBJECT_ARRAY + LONG + "000024b8", OBJECT_ARRAY + LONG + "00007530"
TEXT_AND_INT = ("aced0005757200135b4c6a6176612e6c616e672e4f626a6563743b90ce589f1073296c0200007870000000027400026b3373"
                "7200116a6176612e6c616e672e496e746567657212e2a0a4f781873802000149000576616c7565787200106a6176612e6c61"
                "6e672e4e756d62657286ac951d0b94e08b020000787000000011")
BIG_DECIMAL = ("aced0005757200135b4c6a6176612e6c616e672e4f626a6563743b90ce589f1073296c020000787000000001737200146a61"
               "76612e6d6174682e426967446563696d616c54c71557f981284f0300024900057363616c654c0006696e7456616c7400164c"
               "6a6176612f6d6174682f426967496e74656765723b787200106a6176612e6c616e672e4e756d62657286ac951d0b94e08b02"
               "0000787000000002737200146a6176612e6d6174682e426967496e74656765728cfc9f1fa93bfb1d030006490008626974"
               "436f756e744900096269744c656e67746849001366697273744e6f6e7a65726f427974654e756d49000c6c6f7765737453"
               "65744269744900067369676e756d5b00096d61676e69747564657400025b427871007e0004ffffffffffffffffffffff"
               "fefffffffeffffffff757200025b42acf317f8060854e002000078700000000942ed123b0bd8203a3a7878")
SHARED_REFERENCES = ("aced0005757200135b4c6a6176612e6c616e672e4f626a6563743b90ce589f1073296c0200007870000000047372"
                     "00116a6176612e6c616e672e496e746567657212e2a0a4f781873802000149000576616c7565787200106a6176612e"
                     "6c616e672e4e756d62657286ac951d0b94e08b0200007870000000057372000e6a6176612e6c616e672e4c6f6e673b"
                     "8be490cc8f23df0200014a000576616c75657871007e000300000000000000067400017871007e0007")


@pytest.mark.parametrize("hex_text, expected", [
    (AT_9400, [9400]),
    (MAX_30000, [30000]),
    (TEXT_AND_INT, ["k3", 17]),
    (BIG_DECIMAL, [Decimal("-12345678901234567890.50")]),
    (SHARED_REFERENCES, [5, 6, "x", "x"]),  # class descriptors and a string met twice: back-references
])
def test_keys_decode_to_their_values(hex_text, expected):
    assert decode_key(hex_text) == expected


def test_an_unknown_class_keeps_its_name_and_a_broken_stream_says_so():
    uuid = (OBJECT_ARRAY + "7372000e6a6176612e7574696c2e55554944bc9903f7986d852f0200024a000c6c65617374536967426974734a"
            "000b6d6f7374536967426974737870a456426614174000123e4567e89b12d3")
    assert decode_key(uuid)[0]["class"] == "java.util.UUID"
    with pytest.raises(Unreadable):
        decode_key(AT_9400[:-6])
    with pytest.raises(Unreadable):
        decode_key("00" + AT_9400[2:])


def offset(**fields):
    return [{"partition": {"server": "cdc"}, "offset": {"lsn": 1, **fields}}]


def test_snapshot_state_names_the_table_its_position_and_the_queue():
    collections = json.dumps([{"incremental_snapshot_collections_id": t,
                               "incremental_snapshot_collections_additional_condition": None}
                              for t in ("s.b", "s.c")])
    state = snapshot_state(offset(incremental_snapshot_collections=collections,
                                  incremental_snapshot_primary_key=AT_9400, incremental_snapshot_maximum_key=MAX_30000))
    assert state == {"kind": "incremental", "table": "s.b", "queued": ["s.c"], "at_key": 9400, "max_key": 30000}
    assert snapshot_state(offset(snapshot="INITIAL", snapshot_completed=False)) == {"kind": "initial"}
    assert snapshot_state(offset(lsn_proc=5)) is None and snapshot_state([]) is None
    broken = snapshot_state(offset(incremental_snapshot_collections=collections, incremental_snapshot_primary_key="ab"))
    assert broken["table"] == "s.b" and broken["at_key"].startswith("not readable")


def test_done_share_only_for_one_numeric_key():
    assert done_share(9400, 30000, 1) == pytest.approx(9399 / 29999)
    assert done_share(None, 30000, 1) is None and done_share("k3", "k9", "k0") is None
    assert done_share(5, 5, 5) == 1.0 and done_share(Decimal("2.5"), Decimal(5), 0) == 0.5
