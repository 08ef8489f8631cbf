"""Reply wording (PROTOCOL.md 5.2 and 5.3)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lems.files import replies
from lems.wire.codec import Codec
from lems.wire.message import Record

CODEC = Codec.from_dir(Path(__file__).resolve().parent.parent / "formats")

WANTED = Record("wanted", "W000000123", "OR9990200",
                (("NAM", "DOE, JOHN Q"), ("SEX", "M"), ("RAC", "W"), ("DOB", "19800101"), ("OCA", "CASE-1")),
                "20260101", "LEDS", caution="WARNING - SUBJECT MAY BE ARMED AND DANGEROUS")
VEHICLE = Record("vehicle", "V000000001", "OR9990100", (("LIC", "TEST123"), ("LIS", "OR")), "20250505", "NCIC")


def test_no_record_lines():
    qw = CODEC.parse("QW.OR9990100.NAM/DOE, JANE.DOB/19900101.EDB/1")
    criteria = replies.criteria_text(qw, CODEC.spec("QW"))
    assert criteria == "NAM/DOE, JANE DOB/19900101"
    assert replies.no_record_line("LEDS", replies.kind_word(CODEC, "wanted"), criteria) == \
        "NO LEDS WANT NAM/DOE, JANE DOB/19900101"
    assert replies.no_record_line("NCIC", replies.kind_word(CODEC, "vehicle"), "LIC/ABC123") == \
        "NO NCIC RECORD LIC/ABC123"
    qh = CODEC.parse("QH.OR9990100.FBI/123456AB1.PUR/C.ATN/DET TEST")
    assert replies.criteria_text(qh, CODEC.spec("QH")) == "FBI/123456AB1"


def test_hit_block_person_and_property():
    lines = replies.hit_block(WANTED, CODEC.file("wanted"), "TEST COUNTY SHERIFFS OFFICE")
    assert lines[0] == "WARNING - SUBJECT MAY BE ARMED AND DANGEROUS"
    assert lines[1] == "MKE/WANTED PERSON"
    assert "NAM/DOE, JOHN Q" in lines and "DOB/19800101" in lines
    assert lines[-3:] == ["ORI IS TEST COUNTY SHERIFFS OFFICE", "NIC/W000000123 DTE/20260101",
                          "IMMED CONFIRM WARRANT AND EXTRADITION WITH ORI"]
    lines = replies.hit_block(VEHICLE, CODEC.file("vehicle"), "TEST CITY POLICE DEPARTMENT")
    assert lines[0] == "MKE/STOLEN VEHICLE"
    assert lines[-1] == "IMMED CONFIRM RECORD WITH ORI"


def test_caution_from_cmc_and_file():
    record = Record("protection", "H000000001", "OR9990100", (("NAM", "ROE, A"), ("CMC", "05")), "20260101", "LEDS")
    lines = replies.hit_block(record, CODEC.file("protection"), "X", CODEC.catalogue.cautions)
    assert lines[:3] == ["WARNING - SUBJECT HAS VIOLENT TENDENCIES",
                         "WARNING - THE FOLLOWING IS A PROTECTION ORDER - CONTACT THE ISSUING AGENCY",
                         "MKE/PROTECTION ORDER"]


def test_entry_and_maintenance():
    ew = CODEC.parse(CODEC.spec("EW").example)
    text = "\n".join(replies.entry_accepted(ew, CODEC.file("wanted"), "W000000999"))
    assert "NIC/W000000999" in text and "OCA/ACC-0001" in text
    cw = CODEC.parse(CODEC.spec("CW").example)
    text = "\n".join(replies.maintenance_ack(cw, CODEC.spec("CW"), CODEC.file("wanted"), WANTED))
    assert "CLEAR" in text and "NIC/W000000123" in text
    on_file = replies.reject_on_file(WANTED, CODEC.file("wanted"), "TEST COUNTY SHERIFFS OFFICE")
    assert on_file[0] == "REJECT ON FILE" and "MKE/WANTED PERSON" in on_file
    assert replies.reject_not_on_file(cw)[0] == "REJECT NOT ON FILE"
    lw = CODEC.parse(CODEC.spec("LW").example)
    notice = "\n".join(replies.locate_notice(WANTED, CODEC.file("wanted"), "OR9990200", lw))
    assert "W000000123" in notice and "OR9990200" in notice


def test_nlets_reply_header():
    received = dt.datetime(2026, 11, 3, 15, 4)
    sent = dt.datetime(2026, 11, 3, 15, 5)
    lines = replies.nlets_header("RR", "ORDMV0000", received, 42, sent, 7, "OR9990100", "CTL0000001")
    assert lines == ["RR.ORDMV0000", "1504 11032026 00042", "1505 11032026 00007 OR9990100", "*CTL0000001", "TXT"]
    assert "*" not in "".join(replies.nlets_header("DR", "WA", received, 1, sent, 2, "OR9990100"))


def test_nl_summary():
    lines = replies.nl_summary({"OR": True, "WA": False, "ID": None, "CA": False})
    assert lines == ["NL SUMMARY - 4 STATES QUERIED", "ANSWERED: CA OR WA", "HIT: OR", "NO RECORD: CA WA",
                     "NO ANSWER: ID"]
