"""Every key parses its valid examples and rejects its invalid ones with the right code."""

from __future__ import annotations

from pathlib import Path

import pytest

from lems.wire.codec import GRAMMARS, Codec
from lems.base.errors import Reject
from lems.wire.message import Message

FORMATS = Path(__file__).resolve().parent.parent / "formats"
CODEC = Codec.from_dir(FORMATS)

# PROTOCOL.md appendix C, with W000000123 for <NIC>.
APPENDIX_C = """\
QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101
QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101.SEX/M.RAC/W.EDB/1
QV.OR9990100.LIC/TEST123.LIS/OR
QV.OR9990100.VIN/1TESTVIN000000001
QG.OR9990100.SER/TESTGUN001
EW.OR9990100.NAM/TESTER, ACCEPT A.SEX/M.RAC/W.DOB/19910203.HGT/510.WGT/170.EYE/BRO.HAI/BRO.OFF/2399.DOW/20260101.OCA/ACC-0001.MIS/TEST RECORD
LW.OR9990200.NAM/TESTER, ACCEPT A.NIC/W000000123.DOL/20260102.LCA/ACC-L-1
CW.OR9990100.NAM/TESTER, ACCEPT A.NIC/W000000123.DCL/20260103
XW.OR9990100.NAM/TESTER, ACCEPT A.NIC/W000000123.DOC/20260103
EG.OR9990100.SER/ACCGUN0001.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/ACC-G-1
EA.OR9990100.SER/ACCART0001.TYP/CAMERA.BRA/TESTBRAND.DOT/20260101.OCA/ACC-A-1
QA.OR9990100.SER/ACCART0001.TYP/CAMERA
QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/C.ATN/DET TEST
RQ.OR9990100.OR.*CTL0000001.TXTLIC/TEST123
RQ.OR9990100.WA.TXTLIC/WATEST1
DQ.OR9990100.NL.TXTNAM/DOE, JOHN Q.DOB/19800101
DQ.OR999040Y.OR.TXTNAM/DOE, JOHN Q.DOB/19800101.PUR/F
AM.OR9990100.OR9990200.*AMCTL00001.TXTPLEASE CALL RECORDS RE CASE ACC-0001
AML.OR9990100.OR9990200.TXTOFFICER SAFETY BULLETIN TEST
SM.OR9990000.APB.TXTLEMS TEST STATUS NOTICE
YQ.OR9990100.OR9990200.*YQCTL00001.TXTRTY/WP.RNO/1.PRI/U.OCA/ANY.NIC/W000000123.NAM/DOE, JOHN Q.DOB/19800101.SEX/M.RNA/SGT TEST.RAG/TEST CITY PD.PHO/5555550100
YR.OR9990200.OR9990100.*YQCTL00001.TXTRTY/WP.RNO/1.OCA/ANY.NIC/W000000123.CNF/Y.NAM/DOE, JOHN Q.RNA/DEP TEST
""".splitlines()

# Hand-written valid messages beyond each key's catalogue example.
VALID = [
    "QW.OR9990100.SOC/123456789",
    "QW.OR9990100.OLN/TEST1234.OLS/OR",
    "QM.OR9990100.MNU/AS-12345",
    "QV.OR9990100.NIC/V000000123",
    "QB.OR9990100.BHN/ACC12345B626",
    "QS.OR9990100.NIC/S000000123",
    "QH.OR9990100.FBI/123456AB1.PUR/J",
    "QPP.OR999050H.NAM/ROE, RICHARD.DOB/19750505.PUR/F",
    "EW.OR9990100.TESTER, POSITIONAL A.M.W.19910203.510.170.BRO.BRO.2399.20260101.ACC-0003.MIS/TAGGED AFTER",
    "EV.OR9990100...2027.PC.1ACCVIN0000000002.2021.HOND.CIV.4D.RED/BLK.20260101.ACC-V-2",
    "AM.OR9990100.OR9990200,OR9990000,WA.TXT\nEMR/Y Line one. With periods.\nLine two",
    "AM.OR9990100.APB.TXTmixed Case kept",
    "HBT.OR9990100",
    "SON.OR9990100.OPR/OP010003.PWD/LemsDemo#2026.OTP/123456",
    "KQ.OR9990100.OR.TXTNAM/DOE, JOHN Q.DOB/19800101.PUR/C.ATN/DET TEST",
    "YR.OR9990200.OR9990100.TXTRTY/WP.RNO/2.NIC/W000000123.CNF/P.TIM/30",
]

# (text, code, words the reason must contain)
INVALID = [
    ("QZ.OR9990100.NAM/DOE, JOHN.DOB/19800101", ".11.", "QZ"),
    ("", ".11.", "NO MESSAGE KEY"),
    ("QW.OR9990100.NAM/DOE, JOHN Q", ".13.", "NAM AND DOB, OR SOC, OR FBI, OR MNU, OR OLN, OR SID"),
    ("QW.OR9990100.NAM/DOE JOHN.DOB/19800101", ".12.", "NAM"),
    ("QW.OR9990100.NAM/DOE, JOHN.DOB/19800231", ".12.", "DOB"),
    ("QW.OR9990100.NAM/DOE, JOHN.DOB/19800101.SEX/Q", ".12.", "SEX"),
    ("QW.OR9990100.NAM/DOE, JOHN.DOB/19800101.DOB/19800101", ".12.", "DOB"),
    ("QW.OR9990100.NAM/DOE, JOHN.DOB/19800101.VIN/X", ".12.", "VIN"),
    ("QW.OR9990100.NAM/DOE, JOHN.DOB/19800101.", ".12.", "PERIOD"),
    ("QW.OR99901.NAM/DOE, JOHN.DOB/19800101", ".12.", "ORI"),
    ("QW", ".13.", "ORI"),
    ("QW.OR9990100.DOE, JOHN.19800101", ".12.", "MFC/VALUE"),
    ("QW.OR9990100.NAM/" + "A" * 40 + ", B.DOB/19800101", ".12.", "NAM"),
    ("QV.OR9990100.LIS/OR", ".13.", "LIC, OR VIN, OR OAN, OR NIC"),
    ("QV.OR9990100.NIC/Q000000123", ".12.", "NIC"),
    ("QA.OR9990100.SER/ACCART0001", ".13.", "SER AND TYP"),
    ("QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101", ".23.", "PUR"),
    ("QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/R", ".23.", "PUR"),
    ("QH.OR9990100.FBI/123.PUR/C.ATN/" + "A" * 31, ".23.", "ATN"),
    ("QH.OR9990100.NAM/DOE, JOHN Q.PUR/C", ".13.", "NAM AND SEX AND RAC AND DOB"),
    ("QR.OR9990100.FBI/123456AB1.PUR/C", ".23.", "ATN"),
    ("IQ.OR9990100.WA.TXTFBI/123.ATN/X", ".23.", "PUR"),
    ("FQ.OR9990100.WA.TXTFBI/123.PUR/Z.ATN/X", ".23.", "PUR"),
    ("AQ.OR9990100.WA.TXTFBI/123.PUR/C", ".23.", "ATN"),
    ("KQ.OR9990100.OR.TXTOLN/X1.PUR/C", ".13.", "ATN"),
    ("QPP.OR999050H.NAM/ROE, RICHARD.DOB/19750505", ".13.", "PUR"),
    ("EW.OR9990100.TESTER, A.M.W.19910203.510.170.BRO.BRO.2399.20260101.ACC-1.MIS.EXTRA", ".12.", "POSITIONAL"),
    ("EW.OR9990100.NAM/TESTER, A.M.W", ".12.", "MFC/VALUE"),
    ("RQ.OR9990100.OR.LIC/TEST123", ".13.", "TXT"),
    ("RQ.OR9990100.OR", ".13.", "TXT"),
    ("RQ.OR9990100", ".13.", "DESTINATION"),
    ("AM.OR9990100.TXTHELLO", ".13.", "DESTINATION"),
    ("RQ.OR9990100.O.TXTLIC/TEST123", ".12.", "DEST"),
    ("AM.OR9990100.A1,B1,C1,D1,E1,F1.TXTHELLO", ".12.", "DEST"),
    ("AM.OR9990100.WA,WA.TXTHELLO", ".12.", "DEST"),
    ("RQ.OR9990100.OR.*CONTROL0001.TXTLIC/TEST123", ".12.", "CONTROL"),
    ("RQ.OR9990100.OR.*.TXTLIC/TEST123", ".12.", "CONTROL"),
    ("RQ.OR9990100.OR.TXTLIC/TEST123.", ".12.", "PERIOD"),
    ("AM.OR9990100.OR9990200.TXT", ".13.", "TEXT"),
    ("AM.OR9990100.OR9990200.TXT" + "X" * 15000, ".31.", "LONG"),
    ("QW.OR9990100.MIS/" + "X" * 4000, ".31.", "LONG"),
    ("YR.OR9990200.OR9990100.TXTRTY/WP.RNO/1.NIC/W000000123.CNF/P", ".13.", "TIM WITH CNF/P"),
    ("YQ.OR9990100.OR9990200,WA.TXTRTY/WP.RNO/1.PRI/U.NIC/W000000123", ".12.", "DEST"),
    ("YQ.OR9990100.OR9990200.TXTRTY/WP.RNO/4.PRI/U.NIC/W000000123", ".12.", "RNO"),
    ("SON.OR9990100.OPR/OP010001", ".13.", "PWD"),
    ("SON.OR9990100.OPR/OP010001.PWD/a.b", ".12.", "MFC/VALUE"),
    ("SON.OR9990100.OPR/OP010001.PWD/x.OTP/12345", ".12.", "OTP"),
    ("HBT.", ".12.", "PERIOD"),
    ("HBT.OR9990100.OSN/1", ".12.", "OSN"),
    ("SOF", ".13.", "ORI"),
    ("ACK.OR9990100.OSN/ABC", ".12.", "OSN"),
    ("QW.OR9990100.NAM/DOE, JOHN\x00.DOB/19800101", ".10.", "X'00'"),
    ("QW.OR9990100.NAM/DOÉ, JOHN.DOB/19800101", ".10.", "X'C9'"),
]


def generated_invalid(mke: str) -> list[tuple[str, str]]:
    """From the catalogue: drop each mandatory field of the example; add a foreign field."""
    spec = CODEC.keys[mke]
    msg = CODEC.parse(spec.example)
    out = []
    if spec.fields:
        foreign = "ZZZ/1"
        out.append((CODEC.build(msg) + ("." if msg.fields or not spec.nlets else "") + foreign, ".12."))
    for requirement in spec.required:
        if requirement.when is not None:
            continue
        missing = {code for alt in requirement.alternatives for code in alt}
        kept = tuple(f for f in msg.fields if f[0] not in missing)
        if kept != msg.fields:
            out.append((CODEC.build(Message(msg.mke, msg.ori, kept, msg.dests, msg.control, msg.body)),
                        requirement.code))
    if spec.nlets:
        out.append((CODEC.build(msg).replace(".TXT", ".TX", 1), ".13."))
    elif spec.ori_required:
        out.append((mke, ".13."))
    else:
        out.append((CODEC.build(msg) + ".", ".12."))
    return out


def test_every_key_has_valid_and_invalid_examples():
    for mke, spec in CODEC.keys.items():
        assert spec.example.startswith(mke), f"{mke} has no example in the catalogue"
        assert generated_invalid(mke), f"{mke} has no invalid example"
    hand = {t.split(".", 1)[0] for t, _, _ in INVALID} | {t.split(".", 1)[0] for t in VALID}
    assert {"QW", "QH", "AM", "SON", "RQ", "YR", "EW"} <= hand


@pytest.mark.parametrize("mke", sorted(CODEC.keys))
def test_catalogue_example_parses_and_round_trips(mke):
    msg = CODEC.parse(CODEC.keys[mke].example)
    assert msg.mke == mke
    assert CODEC.parse(CODEC.build(msg)) == msg


@pytest.mark.parametrize("mke", sorted(CODEC.keys))
def test_generated_invalid_examples_reject(mke):
    for text, code in generated_invalid(mke):
        with pytest.raises(Reject) as info:
            CODEC.parse(text)
        assert info.value.code == code, (text, info.value.reason)
        assert info.value.original == text


@pytest.mark.parametrize("text", APPENDIX_C + VALID)
def test_valid_messages(text):
    msg = CODEC.parse(text)
    assert CODEC.parse(CODEC.build(msg)) == msg


@pytest.mark.parametrize("text,code,words", INVALID)
def test_invalid_messages(text, code, words):
    with pytest.raises(Reject) as info:
        CODEC.parse(text)
    assert info.value.code == code, info.value.reason
    assert words in info.value.reason
    assert info.value.original == text


@pytest.mark.parametrize("grammar", GRAMMARS)
def test_every_grammar_reads_the_same(grammar):
    codec = Codec.from_dir(FORMATS, grammar)
    for text in APPENDIX_C + VALID:
        assert codec.parse(text) == CODEC.parse(text)
    for text, code, _ in INVALID:
        with pytest.raises(Reject) as info:
            codec.parse(text)
        assert info.value.code == code


def test_fields_and_structure():
    msg = CODEC.parse("qw.or9990100.nam/doe, john q.dob/19800101")
    assert msg == Message("QW", "OR9990100", (("NAM", "DOE, JOHN Q"), ("DOB", "19800101")))
    assert msg.raw == "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"
    rq = CODEC.parse("RQ.OR9990100.OR.*CTL0000001.TXT\nLIC/TEST123")
    assert (rq.dests, rq.control, rq.fields) == (("OR",), "CTL0000001", (("LIC", "TEST123"),))
    am = CODEC.parse("am.or9990100.or9990200,wa.txtEMR/Y Call me. Now.\nthanks")
    assert am.body == "EMR/Y Call me. Now.\nthanks" and am.dests == ("OR9990200", "WA") and am.fields == ()
    son = CODEC.parse("son.or9990100.opr/op010001.pwd/LemsDemo#2026")
    assert son.get("PWD") == "LemsDemo#2026" and son.get("OPR") == "OP010001"
    assert "LemsDemo#2026" in son.raw and son.raw.startswith("SON.OR9990100.OPR/OP010001")
    assert CODEC.parse("HBT") == Message("HBT", "")
    assert CODEC.build(Message("HBT", "")) == "HBT"


def test_positional_fields_resolve_to_codes():
    msg = CODEC.parse("EWJ.OR9990100.TESTER, JUNIOR A.M.W.20100203.....2399.20260101.ACC-0002.SMT/TAT L ARM")
    assert msg.fields == (("NAM", "TESTER, JUNIOR A"), ("SEX", "M"), ("RAC", "W"), ("DOB", "20100203"),
                          ("OFF", "2399"), ("DOW", "20260101"), ("OCA", "ACC-0002"), ("SMT", "TAT L ARM"))
    assert CODEC.build(msg).startswith("EWJ.OR9990100.NAM/TESTER, JUNIOR A.SEX/M.")


def test_line_breaks():
    assert CODEC.parse("QV.OR9990100.LIC/TEST123\r\n") == CODEC.parse("QV.OR9990100.LIC/TEST123")
    wrapped = CODEC.parse("QW.OR9990100.NAM/DOE, JOHN Q.\nDOB/19800101")
    assert wrapped.get("DOB") == "19800101"
    with pytest.raises(Reject) as info:
        CODEC.parse("QW.OR9990100.NAM/DOE,\nJOHN Q.DOB/19800101")
    assert info.value.code == ".12."


def test_spec_and_file():
    assert CODEC.spec("QW").file == "wanted"
    with pytest.raises(Reject) as info:
        CODEC.spec("ZZ")
    assert info.value.code == ".11."
    assert CODEC.file("wanted").letter == "W"


def test_build_refuses_unwritable_values():
    with pytest.raises(ValueError):
        CODEC.build(Message("QW", "OR9990100", (("NAM", "DOE. JOHN"),)))
    with pytest.raises(ValueError):
        CODEC.build(Message("ZZ", "OR9990100"))
