"""Unit tests of ``cdclake recover``'s pure parts: the slot-lost hint, LSNs and the
diagnosis rules (the recovery itself: test_recover.py)."""

from __future__ import annotations

from cdclake.capture.exceptions import RECOVER_HINT, slot_lost_hint
from cdclake.capture.recover import Diagnosis, _reasons, lsn_int, lsn_text


def test_hint_names_recover_for_debezium_and_postgresql_slot_errors():
    assert slot_lost_hint("Caused by: io.debezium.DebeziumException: trying to read change stream starting at "
                          "LSN{0/1A2B} ... but it is no longer available") == RECOVER_HINT
    assert slot_lost_hint('ERROR: replication slot "slot_x" does not exist') == RECOVER_HINT
    assert slot_lost_hint('ERROR: can no longer get changes from replication slot "s"') == RECOVER_HINT
    assert slot_lost_hint('ERROR: relation "public.t" does not exist') is None


def test_lsn_round_trip():
    assert lsn_int("0/16B3748") == 0x16B3748
    assert lsn_int("1/0") == 1 << 32
    assert lsn_text(lsn_int("A/FF00")) == "A/FF00"
    assert lsn_int(None) is None


def slot(**fields):
    return {"name": "s", "exists": True, "wal_status": "reserved", "confirmed_flush_lsn": "0/100", **fields}


def test_diagnosis_rules():
    assert _reasons(Diagnosis(slot(), "RUNNING", 0x100)) == []
    assert _reasons(Diagnosis(slot(), "RUNNING", None)) == []
    assert "wal_status lost" in _reasons(Diagnosis(slot(wal_status="lost"), "FAILED", 0x100))[0]
    assert "older than" in _reasons(Diagnosis(slot(), "FAILED", 0x50))[0]
    assert "holds offsets" in _reasons(Diagnosis({"name": "s", "exists": False}, "absent", 0x100))[0]
    assert "missing" in _reasons(Diagnosis({"name": "s", "exists": False}, "STOPPED", None))[0]
    assert _reasons(Diagnosis({"name": "s", "exists": False}, "absent", None)) == []
