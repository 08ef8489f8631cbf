"""Record maintenance end to end over TLS: entry, modify, cancel, locate, clear (PROTOCOL.md 5.1, 5.2, 5.6).

One valid entry per file that takes entries (the catalogue examples, Appendix C
verbatim where it has one), each entered by a terminal of the agency allowed to
(OR9990100 for the investigative files, the designated agency OR999050H for the
LEDS prohibited persons file), then found, refused as a duplicate, modified,
located by another agency, cleared or cancelled.
"""

from __future__ import annotations

import re
import time

import attrs
import pytest
from test_delivery import nothing_more, wait_for

CITY = ("T0100001", "OR9990100", "OP010001")      # TEST CITY POLICE DEPARTMENT, full level
CITY_MOBILE = ("T0100002", "OR9990100", "OP010001")
COUNTY = ("T0200001", "OR9990200", "OP020001")    # TEST COUNTY SHERIFFS OFFICE
HEALTH = ("T0500001", "OR999050H", "OP050001")    # designated agency for the prohibited persons file
TODAY = "20261103"                               # the FakeClock's date in the switch's time zone

# Appendix C, verbatim.
EW = ("EW.OR9990100.NAM/TESTER, ACCEPT A.SEX/M.RAC/W.DOB/19910203.HGT/510.WGT/170.EYE/BRO.HAI/BRO.OFF/2399"
      ".DOW/20260101.OCA/ACC-0001.MIS/TEST RECORD")
LW = "LW.OR9990200.NAM/TESTER, ACCEPT A.NIC/<NIC>.DOL/20260102.LCA/ACC-L-1"
CW = "CW.OR9990100.NAM/TESTER, ACCEPT A.NIC/<NIC>.DCL/20260103"
XW = "XW.OR9990100.NAM/TESTER, ACCEPT A.NIC/<NIC>.DOC/20260103"
EG = "EG.OR9990100.SER/ACCGUN0001.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/ACC-G-1"
EA = "EA.OR9990100.SER/ACCART0001.TYP/CAMERA.BRA/TESTBRAND.DOT/20260101.OCA/ACC-A-1"
QA = "QA.OR9990100.SER/ACCART0001.TYP/CAMERA"
QW_ACCEPT = "QW.OR9990100.NAM/TESTER, ACCEPT A.DOB/19910203"


@attrs.frozen
class Case:
    """One file that takes entries: a valid entry and the keys that change it."""

    file: str
    letter: str
    title: str
    enter: str
    inquiry: str
    ident: str                 # the identifying field change messages carry
    oca: str
    modify: str
    change: str                # a field the modify gives, as it then shows in a hit
    cancel: str
    locate: str | None = None
    clear: str | None = None
    name: str | None = None
    who: tuple[str, str, str] = CITY

    @property
    def word(self) -> str:
        return "WANT" if self.name else "RECORD"

    @property
    def ori(self) -> str:
        return self.who[1]

    def change_message(self, key: str, nic: str, extra: str, ori: str | None = None) -> str:
        return f"{key}.{ori or self.ori}.{self.ident}.NIC/{nic}.{extra}"


CASES = [
    Case("wanted", "W", "WANTED PERSON", EW, QW_ACCEPT, "NAM/TESTER, ACCEPT A", "ACC-0001",
         "MW", "WGT/175", "XW", "LW", "CW", name="TESTER, ACCEPT A"),
    Case("missing", "M", "MISSING PERSON",
         "EMD.OR9990100.NAM/TESTER, MISSING A.SEX/F.RAC/W.DOB/19500101.DLC/20260101.OCA/ACC-M-1",
         "QM.OR9990100.NAM/TESTER, MISSING A.DOB/19500101", "NAM/TESTER, MISSING A", "ACC-M-1",
         "MM", "WGT/130", "XM", "LM", "CM", name="TESTER, MISSING A"),
    Case("protection", "H", "PROTECTION ORDER",
         "EPO.OR9990100.NAM/TESTER, RESTRAINED A.SEX/M.RAC/W.DOB/19850101.PNO/26DR00001.ISD/20260101"
         ".EXP/20270101.PPN/TESTER, PROTECTED B.BRD/Y.OCA/ACC-P-1",
         "QW.OR9990100.NAM/TESTER, RESTRAINED A.DOB/19850101", "NAM/TESTER, RESTRAINED A", "ACC-P-1",
         "MPO", "EXP/20280101", "XPO", None, "CPO", name="TESTER, RESTRAINED A"),
    Case("supervised", "C", "SUPERVISED RELEASE",
         "ESR.OR9990100.NAM/TESTER, RELEASED A.SEX/M.RAC/W.DOB/19880808.OFF/2399.SRD/20260101.EXP/20280101"
         ".SPO/PO TEST.OCA/ACC-S-1",
         "QW.OR9990100.NAM/TESTER, RELEASED A.DOB/19880808", "NAM/TESTER, RELEASED A", "ACC-S-1",
         "MSR", "SPO/PO OTHER", "XSR", None, "CSR", name="TESTER, RELEASED A"),
    Case("sexoffender", "X", "SEX OFFENDER",
         "EXS.OR9990100.NAM/TESTER, REGISTERED A.SEX/M.RAC/W.DOB/19700707.SOR/OR.ERD/20260101.OCA/ACC-X-1",
         "QW.OR9990100.NAM/TESTER, REGISTERED A.DOB/19700707", "NAM/TESTER, REGISTERED A", "ACC-X-1",
         "MXS", "EXP/20360101", "XXS", None, "CXS", name="TESTER, REGISTERED A"),
    Case("vehicle", "V", "STOLEN VEHICLE",
         "EV.OR9990100.LIC/ACC123.LIS/OR.LIY/2027.LIT/PC.VIN/1ACCVIN0000000001.VYR/2020.VMA/TOYT.VMO/CAM"
         ".VST/4D.VCO/BLU.DOT/20260101.OCA/ACC-V-1",
         "QV.OR9990100.VIN/1ACCVIN0000000001", "VIN/1ACCVIN0000000001", "ACC-V-1",
         "MV", "VCO/WHI", "XV", "LV", "CV"),
    # The positional form: fields without codes in the catalogue's order.
    Case("plate", "L", "STOLEN LICENSE PLATE", "EL.OR9990100.ACC456.OR.2027.PC.20260101.ACC-L-9",
         "QV.OR9990100.LIC/ACC456.LIS/OR", "LIC/ACC456", "ACC-L-9",
         "ML", "MIS/BOTH PLATES TAKEN", "XL", "LL", "CL"),
    Case("gun", "G", "STOLEN GUN", EG, "QG.OR9990100.SER/ACCGUN0001", "SER/ACCGUN0001", "ACC-G-1",
         "MG", "MOD/G19", "XG", "LG", "CG"),
    Case("article", "A", "STOLEN ARTICLE", EA, QA, "SER/ACCART0001", "ACC-A-1",
         "MA", "BRA/OTHERBRAND", "XA", "LA", "CA"),
    Case("boat", "B", "STOLEN BOAT",
         "EB.OR9990100.REG/OR123ABC.BHN/ACC12345B626.MAK/BAYL.BYR/2026.BLE/18.DOT/20260101.OCA/ACC-B-1",
         "QB.OR9990100.REG/OR123ABC", "REG/OR123ABC", "ACC-B-1", "MB", "BLE/19", "XB", "LB", "CB"),
    Case("securities", "S", "STOLEN SECURITIES",
         "ES.OR9990100.SER/ACCSEC0001.TYP/BD.DEN/1000.ISS/US TREASURY.DOT/20260101.OCA/ACC-SEC-1",
         "QS.OR9990100.SER/ACCSEC0001.TYP/BD", "SER/ACCSEC0001", "ACC-SEC-1", "MS", "DEN/5000", "XS", "LS", "CS"),
    Case("prohibited", "P", "PROHIBITED PERSON",
         "EPP.OR999050H.NAM/ROE, TESTER.SEX/M.RAC/W.DOB/19760606.PPT/COMMITMENT.ISD/20260101.OCA/ACC-PP-1",
         "QPP.OR999050H.NAM/ROE, TESTER.DOB/19760606.PUR/F", "NAM/ROE, TESTER", "ACC-PP-1",
         "MPP", "ISD/20260115", "XPP", name="ROE, TESTER", who=HEALTH),
]
BY_FILE = {case.file: case for case in CASES}
IDS = [case.file for case in CASES]


def nic_of(text: str) -> str:
    return re.search(r"NIC/([A-Z][0-9]{9})", text).group(1)


def signed_on(running, who: tuple[str, str, str]):
    return running.signed_on(*who)


def enter(c, case: Case) -> str:
    reply = c.request(case.enter)
    assert reply.cls == "R", reply.text
    return nic_of(reply.text)


def ack_lines(key: str, ori: str, action: str, case: Case, nic: str) -> list[str]:
    return ([ori, f"{key} ACCEPTED - {action} {case.title}"] + ([f"NAM/{case.name}"] if case.name else [])
            + [f"NIC/{nic} OCA/{case.oca}"])


def assert_on_file(reply, case: Case, nic: str) -> list[str]:
    """The inquiry reply shows the record in its LEDS section."""
    assert reply.cls == "R", reply.text
    lines = reply.text.split("\n")
    assert f"NIC/{nic} DTE/{TODAY}" in lines, reply.text
    assert f"MKE/{case.title}" in lines
    assert not any(line.startswith(f"NO LEDS {case.word}") for line in lines), reply.text
    return lines


def assert_not_on_file(reply, case: Case, nic: str) -> None:
    assert reply.cls == "R", reply.text
    assert f"NIC/{nic}" not in reply.text, reply.text
    assert any(line.startswith(f"NO LEDS {case.word} ") for line in reply.text.split("\n")), reply.text


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- every file ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_entry_inquiry_duplicate_modify_and_refusals(running, case):
    c = signed_on(running, case.who)
    entry = c.request(case.enter)
    assert entry.cls == "R", entry.text
    nic = f"{case.letter}000100000"  # the first run-time NIC of the file's letter
    assert entry.text.split("\n") == ([case.ori, f"{case.enter.split('.')[0]} ACCEPTED - {case.title} ENTERED"]
                                      + ([f"NAM/{case.name}"] if case.name else []) + [f"NIC/{nic} OCA/{case.oca}"])
    lines = assert_on_file(c.request(case.inquiry), case, nic)
    assert f"ORI IS {running.switch.registry.agency_name(case.ori)}" in lines

    duplicate = c.request(case.enter)
    assert duplicate.cls == "E"
    assert duplicate.text.startswith("REJECT ON FILE\n"), duplicate.text
    assert f"NIC/{nic} DTE/{TODAY}" in duplicate.text.split("\n")
    assert f"MKE/{case.title}" in duplicate.text

    modified = c.request(case.change_message(case.modify, nic, case.change))
    assert modified.cls == "R", modified.text
    assert modified.text.split("\n") == ack_lines(case.modify, case.ori, "MODIFY", case, nic)
    assert case.change in assert_on_file(c.request(case.inquiry), case, nic)

    unknown = f"{case.letter}000999999"
    missing = c.request(case.change_message(case.modify, unknown, case.change))
    assert missing.cls == "E" and missing.text.split("\n")[0] == "REJECT NOT ON FILE", missing.text
    assert f"NIC/{unknown}" in missing.text

    # Only the entering agency changes its record; the others get .22. and nothing changes.
    other = signed_on(running, COUNTY)
    # (The prohibited persons file takes minimum information only: no MIS there.)
    not_mine = "ISD/20260202" if case.file == "prohibited" else "MIS/NOT MINE"
    refusals = [case.change_message(case.modify, nic, not_mine, ori="OR9990200"),
                case.change_message(case.cancel, nic, "DOC/20260103", ori="OR9990200")]
    if case.clear:
        refusals.append(case.change_message(case.clear, nic, "DCL/20260103", ori="OR9990200"))
    for text in refusals:
        refused = other.request(text)
        assert refused.cls == "E" and refused.text.startswith(".22."), (text, refused.text)
    assert not_mine not in "\n".join(assert_on_file(c.request(case.inquiry), case, nic))

    # Off file: cleared where the file has a clear key, otherwise cancelled.
    key, action, extra = ((case.clear, "CLEAR", "DCL/20260103") if case.clear
                          else (case.cancel, "CANCEL", "DOC/20260103"))
    done = c.request(case.change_message(key, nic, extra))
    assert done.text.split("\n") == ack_lines(key, case.ori, action, case, nic), done.text
    assert_not_on_file(c.request(case.inquiry), case, nic)
    again = c.request(case.change_message(key, nic, extra))
    assert again.cls == "E" and again.text.startswith("REJECT NOT ON FILE")


@pytest.mark.parametrize("case", [c for c in CASES if c.clear], ids=[c.file for c in CASES if c.clear])
def test_cancel_takes_the_record_off_file(running, case):
    c = signed_on(running, case.who)
    nic = enter(c, case)
    cancelled = c.request(case.change_message(case.cancel, nic, "DOC/20260103"))
    assert cancelled.text.split("\n") == ack_lines(case.cancel, case.ori, "CANCEL", case, nic), cancelled.text
    assert_not_on_file(c.request(case.inquiry), case, nic)
    # A cancelled record can be neither cleared nor modified; the same data may be entered again.
    assert c.request(case.change_message(case.clear, nic, "DCL/20260103")).text.startswith("REJECT NOT ON FILE")
    assert enter(c, case) == f"{case.letter}000100001"


@pytest.mark.parametrize("case", [c for c in CASES if c.locate], ids=[c.file for c in CASES if c.locate])
def test_locate_by_another_agency_notifies_every_terminal_of_the_entering_agency(running, case):
    c = signed_on(running, case.who)
    mobile = signed_on(running, CITY_MOBILE)
    nic = enter(c, case)
    locator = signed_on(running, COUNTY)
    located = locator.request(case.change_message(case.locate, nic, "DOL/20260102.LCA/ACC-LOC-1", ori="OR9990200"))
    assert located.cls == "R", located.text
    assert located.text.split("\n") == ack_lines(case.locate, "OR9990200", "LOCATE", case, nic)
    expected = ([f"LOCATE NOTICE - {case.title}", f"NIC/{nic} OCA/{case.oca}"]
                + ([f"NAM/{case.name}"] if case.name else [])
                + ["LOCATED BY ORI OR9990200 DOL/20260102 LCA/ACC-LOC-1"])
    for terminal in (mobile, c):
        notice = wait_for(terminal, "LOCATE NOTICE")
        assert notice.cls == "U" and notice.text.split("\n") == expected
    nothing_more(locator)

    # Located records stay on file, with the locate data, until the entering agency clears them.
    lines = assert_on_file(c.request(case.inquiry), case, nic)
    assert {"RECORD LOCATED - SEE LOCATE DATA", "DOL/20260102", "LCA/ACC-LOC-1", "LOR/OR9990200"} <= set(lines)
    cleared = c.request(case.change_message(case.clear, nic, "DCL/20260103"))
    assert cleared.cls == "R", cleared.text
    assert_not_on_file(c.request(case.inquiry), case, nic)


def test_locate_notice_is_queued_when_no_terminal_of_the_entering_agency_is_connected(running):
    c = signed_on(running, CITY)
    nic = enter(c, BY_FILE["wanted"])
    c.close()
    wait_until(lambda: running.call(running.switch.hub.live, "T0100001") is None)
    locator = signed_on(running, COUNTY)
    assert locator.request(LW.replace("<NIC>", nic)).cls == "R"
    queued = running.call(running.switch.router.delivery.queue_for, "OR9990100")
    assert "T0100001" in [f.terminal for f in queued]

    back = signed_on(running, CITY)
    notice = wait_for(back, "LOCATE NOTICE")
    assert notice.cls == "U"
    assert notice.text.split("\n") == ["LOCATE NOTICE - WANTED PERSON", f"NIC/{nic} OCA/ACC-0001",
                                       "NAM/TESTER, ACCEPT A", "LOCATED BY ORI OR9990200 DOL/20260102 LCA/ACC-L-1"]


# -- Appendix C ---------------------------------------------------------------------------------------


def test_appendix_c_enter_locate_clear(running):
    c = signed_on(running, CITY)
    nic = enter(c, BY_FILE["wanted"])
    assert signed_on(running, COUNTY).request(LW.replace("<NIC>", nic)).cls == "R"
    cleared = c.request(CW.replace("<NIC>", nic))
    assert (cleared.cls, cleared.text.split("\n")[1]) == ("R", "CW ACCEPTED - CLEAR WANTED PERSON")
    assert c.request(QW_ACCEPT).text.split("\n")[:2] == ["LEDS RESPONSE", "NO LEDS WANT NAM/TESTER, ACCEPT A DOB/19910203"]


def test_appendix_c_enter_cancel(running):
    c = signed_on(running, CITY)
    nic = enter(c, BY_FILE["wanted"])
    cancelled = c.request(XW.replace("<NIC>", nic))
    assert (cancelled.cls, cancelled.text.split("\n")[1]) == ("R", "XW ACCEPTED - CANCEL WANTED PERSON")
    assert c.request(QW_ACCEPT).text.split("\n")[:2] == ["LEDS RESPONSE", "NO LEDS WANT NAM/TESTER, ACCEPT A DOB/19910203"]


def test_appendix_c_gun_and_article(running):
    c = signed_on(running, CITY)
    gun, article = nic_of(c.request(EG).text), nic_of(c.request(EA).text)
    assert (gun, article) == ("G000100000", "A000100000")
    assert f"NIC/{gun} DTE/{TODAY}" in c.request("QG.OR9990100.SER/ACCGUN0001").text
    found = c.request(QA)
    assert found.text.split("\n")[:6] == ["LEDS RESPONSE", "MKE/STOLEN ARTICLE", "SER/ACCART0001", "TYP/CAMERA",
                                          "BRA/TESTBRAND", "DOT/20260101"]
    assert found.text.split("\n")[-2:] == ["NCIC RESPONSE", "NO NCIC RECORD SER/ACCART0001 TYP/CAMERA"]
    assert "IMMED CONFIRM RECORD WITH ORI" in found.text.split("\n")
    assert f"NIC/{article} DTE/{TODAY}" in found.text


# -- NIC allocation and restart ------------------------------------------------------------------------


def test_nics_increase_are_never_reused_and_survive_a_restart(switch_factory):
    first = switch_factory()
    c = signed_on(first, CITY)
    second_entry = EW.replace("TESTER, ACCEPT A", "SECOND, ENTRY B").replace("ACC-0001", "ACC-0002")
    third_entry = EW.replace("TESTER, ACCEPT A", "THIRD, ENTRY C").replace("ACC-0001", "ACC-0003")
    assert enter(c, BY_FILE["wanted"]) == "W000100000"
    second = nic_of(c.request(second_entry).text)
    assert second == "W000100001"
    assert c.request(XW.replace("TESTER, ACCEPT A", "SECOND, ENTRY B").replace("<NIC>", second)).cls == "R"
    assert nic_of(c.request(third_entry).text) == "W000100002", "a cancelled record's NIC is not given again"
    assert enter(c, BY_FILE["gun"]) == "G000100000", "each file letter has its own numbers"
    assert signed_on(first, COUNTY).request(LW.replace("<NIC>", "W000100000")).cls == "R"
    first.stop()

    restarted = switch_factory()
    c = signed_on(restarted, CITY)
    lines = assert_on_file(c.request(QW_ACCEPT), BY_FILE["wanted"], "W000100000")
    assert "RECORD LOCATED - SEE LOCATE DATA" in lines and "LOR/OR9990200" in lines
    assert_not_on_file(c.request("QW.OR9990100.NAM/SECOND, ENTRY B.DOB/19910203"), BY_FILE["wanted"], second)
    assert c.request(EW).text.startswith("REJECT ON FILE\n"), "duplicates are still spotted after a restart"
    fourth = EW.replace("TESTER, ACCEPT A", "FOURTH, ENTRY D").replace("ACC-0001", "ACC-0004")
    assert nic_of(c.request(fourth).text) == "W000100003"
    assert enter(c, BY_FILE["vehicle"]) == "V000100000"
    assert nic_of(c.request(EG.replace("ACCGUN0001", "ACCGUN0002")).text) == "G000100001"


# -- identification and the duplicate rule -------------------------------------------------------------


def test_the_record_to_change_must_match_what_the_message_names(running):
    c = signed_on(running, CITY)
    nic = enter(c, BY_FILE["wanted"])
    gun = enter(c, BY_FILE["gun"])
    for text in (XW.replace("ACCEPT A", "SOMEONE ELSE").replace("<NIC>", nic),      # NAM differs
                 f"XW.OR9990100.OCA/OTHER-OCA.NIC/{nic}.DOC/20260103",                # OCA differs
                 XW.replace("<NIC>", gun),                                            # a gun's NIC
                 f"XG.OR9990100.SER/ACCGUN9999.NIC/{gun}.DOC/20260103",               # SER differs
                 XW.replace("<NIC>", "W000000001")):                                  # not in this file set
        refused = c.request(text)
        assert refused.cls == "E" and refused.text.startswith("REJECT NOT ON FILE"), (text, refused.text)
    # The demo record W000000001 was entered by OR9990200: identified right, it is still not ours.
    demo = c.request("XW.OR9990100.NAM/DOE, JOHN Q.NIC/W000000001.DOC/20260103")
    assert demo.cls == "E" and demo.text.startswith(".22.") and "OR9990200" in demo.text

    # In a modify the first identifying field names the record; a later one is a change.
    renamed = c.request(f"MW.OR9990100.OCA/ACC-0001.NIC/{nic}.NAM/RENAMED, TESTER A")
    assert renamed.cls == "R" and "NAM/RENAMED, TESTER A" in renamed.text.split("\n"), renamed.text
    assert f"NIC/{nic}" in c.request("QW.OR9990100.NAM/RENAMED, TESTER A.DOB/19910203").text
    assert c.request(QW_ACCEPT).text.split("\n")[1].startswith("NO LEDS WANT")


def test_duplicate_rule_same_ori_same_key_data_on_file(running):
    city = signed_on(running, CITY)
    county = signed_on(running, COUNTY)
    gun = enter(city, BY_FILE["gun"])
    # Another agency's entry of the same gun is its own record.
    assert enter(county, attrs.evolve(BY_FILE["gun"], enter=EG.replace("OR9990100", "OR9990200"))) == "G000100001"
    # Different key data (calibre) is not a duplicate; different OCA with the same key data is.
    assert city.request(EG.replace("9MM", "40").replace("ACC-G-1", "ACC-G-2")).cls == "R"
    on_file = city.request(EG.replace("ACC-G-1", "ACC-G-3").replace("20260101", "20260202"))
    assert on_file.text.startswith("REJECT ON FILE\n") and f"NIC/{gun}" in on_file.text
    # Names compare without case or spacing; an entry without DOB matches on the fields it gives.
    spaced = EW.replace("TESTER, ACCEPT A", "TESTER,ACCEPT A")
    enter(city, BY_FILE["wanted"])
    assert city.request(spaced).text.startswith("REJECT ON FILE\n")
    no_dob = EW.replace(".DOB/19910203", ".SOC/999009999")
    assert city.request(no_dob).text.startswith("REJECT ON FILE\n")
    # Once cleared, the same data may be entered again.
    assert city.request(f"CG.OR9990100.SER/ACCGUN0001.NIC/{gun}.DCL/20260103").cls == "R"
    assert city.request(EG).cls == "R"


def test_positional_entries_and_cautions(running):
    c = signed_on(running, CITY)
    juvenile = c.request("EWJ.OR9990100.TESTER, JUNIOR A.M.W.20100203.....2399.20260101.ACC-0002")
    assert juvenile.cls == "R", juvenile.text
    nic = nic_of(juvenile.text)
    lines = c.request("QW.OR9990100.NAM/TESTER, JUNIOR A.DOB/20100203").text.split("\n")
    assert lines[:9] == ["LEDS RESPONSE", "MKE/WANTED PERSON", "NAM/TESTER, JUNIOR A", "SEX/M", "RAC/W", "DOB/20100203", "OFF/2399",
                         "DOW/20260101", "OCA/ACC-0002"]
    assert f"NIC/{nic} DTE/{TODAY}" in lines
    armed = c.request(EW.replace("ACCEPT A", "ARMED A").replace("ACC-0001", "ACC-0009") + ".CMC/00")
    assert armed.cls == "R"
    hit = c.request("QW.OR9990100.NAM/TESTER, ARMED A.DOB/19910203").text.split("\n")
    assert hit[:3] == ["LEDS RESPONSE", "WARNING - SUBJECT MAY BE ARMED AND DANGEROUS", "MKE/WANTED PERSON"]


def test_entered_record_can_be_confirmed_by_yq(running):
    c = signed_on(running, CITY)
    nic = enter(c, BY_FILE["wanted"])
    yq = (f"YQ.OR9990200.OR9990100.*YQMAINT001.TXTRTY/WP.RNO/1.PRI/U.OCA/ACC-0001.NIC/{nic}"
          ".NAM/TESTER, ACCEPT A.DOB/19910203.SEX/M.RNA/DEP TEST.RAG/TEST COUNTY SO.PHO/5555550200")
    reply = signed_on(running, COUNTY).request(yq)
    assert reply.cls == "R" and f"NIC/{nic} RNO/1 PRI/U" in reply.text, reply.text


# -- handler failures --------------------------------------------------------------------------------


def test_failing_handler_is_30_and_the_switch_goes_on(running):
    handler = running.switch.router.handlers["records"]

    def broken(*args):
        raise RuntimeError("disk on fire")

    c = signed_on(running, CITY)
    running.call(setattr, handler, "enter", broken)
    failed = c.request(EW)
    assert failed.cls == "E" and failed.text.startswith(".30. FILE HANDLER UNAVAILABLE OR FAILED FOR EW")
    assert c.request("QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101").cls == "R"
    running.call(delattr, handler, "enter")
    assert enter(c, BY_FILE["wanted"]) == "W000100000", "the failure spent no number"


PLUGIN = '''
class InquiryOnly:
    """A site handler that answers inquiries and takes no entries."""

    def __init__(self, context):
        self.context = context

    def inquire(self, msg, file, record_set):
        return []
'''


def test_handler_without_maintenance_methods_is_01(home, switch_factory):
    plugins = home / "routes" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "inquiryonly.py").write_text(PLUGIN)
    routes = home / "routes" / "routes.toml"
    text = routes.read_text()
    head, tail = text.split("[[maintenance]]", 1)
    tail = tail.replace('handler = "records"', 'handler = "inquiryonly"', 1)
    routes.write_text(head + '[[handler]]\nname = "inquiryonly"\nuse = "inquiryonly:InquiryOnly"\n\n'
                      + "[[maintenance]]" + tail)
    running = switch_factory()
    c = signed_on(running, CITY)
    refused = c.request(EG)
    assert refused.cls == "E" and refused.text.startswith(".01. EG NOT TAKEN"), refused.text
    assert c.request("QG.OR9990100.SER/TESTGUN001").cls == "R"


def test_entries_survive_a_reload_and_a_second_locate_replaces_the_first(running):
    from lems.admin.operations import Admin

    c = signed_on(running, CITY)
    nic = enter(c, BY_FILE["wanted"])
    county = signed_on(running, COUNTY)
    assert county.request(LW.replace("<NIC>", nic)).cls == "R"
    running.call(lambda: Admin(running.switch).reload())
    again = county.request(f"LW.OR9990200.OCA/ACC-0001.NIC/{nic}.DOL/20260105")
    assert again.cls == "R", again.text
    lines = assert_on_file(c.request(QW_ACCEPT), BY_FILE["wanted"], nic)
    assert [line for line in lines if line[:4] in ("DOL/", "LCA/", "LOR/")] == ["DOL/20260105", "LOR/OR9990200"]
    assert enter(c, attrs.evolve(BY_FILE["wanted"], enter=EW.replace("ACC-0001", "ACC-0005"))) == "W000100001"
