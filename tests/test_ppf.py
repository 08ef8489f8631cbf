"""The prohibited persons file and its NICS reporting (PROTOCOL.md 9), over real TLS.

Each bullet of issue 17: minimum information and designated agencies; the emulated
NICS behind WVNICS000 (EDP/MDP/XDP, QDP, nics down/up/forget); the transmission and
its notices; relief; the reconciliation; status and the journal; confidentiality.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_delivery import nothing_more, wait_for

from lems.admin.operations import Admin
from lems.admin.shell import Console
from lems.traffic.ppf import is_prohibition
from lems.wire.codec import Codec

CODEC = Codec.from_dir(Path(__file__).resolve().parent.parent / "formats")

HEALTH = ("T0500001", "OR999050H", "OP050001")
COURT = ("T0600001", "OR999060J", "OP060001")
PSRB = ("T0700001", "OR999070S", "OP070001")
CONTROL = ("T0000001", "OR9990000", "OP000001")
POLICE = ("T0100001", "OR9990100", "OP010001")

ENTRY = "EPP.OR999050H.NAM/PPFTEST, ALICE.DOB/19810101.SEX/F.RAC/W.PPT/COMMITMENT.ISD/20260101.OCA/OHA-26-0001"
QPP = "QPP.OR9990100.NAM/PPFTEST, ALICE.DOB/19810101.PUR/F"


def console(running, line: str):
    return running.call(lambda: Console(Admin(running.switch, running.service), "tester").execute(line))


def nic_of(text: str) -> str:
    return re.search(r"NIC/(P[0-9]{9})", text).group(1)


def nrn_of(text: str) -> str:
    return re.search(r"NRN/(NR[0-9]{10})", text).group(1)


def today(running) -> str:
    return running.switch.today().strftime("%Y%m%d")


# -- minimum information, designated agencies ------------------------------------------------------

def test_entry_takes_minimum_information_from_designated_agencies_only(running):
    health = running.signed_on(*HEALTH)
    out = health.request(ENTRY)
    assert out.cls == "R" and "EPP ACCEPTED - PROHIBITED PERSON ENTERED" in out.text, out.text
    nic = nic_of(out.text)
    for extra in ("MIS/DIAGNOSED SCHIZOPHRENIA", "DIA/F20.9", "EXP/20300101", "PRC/MH"):
        refused = health.request(ENTRY.replace("PPFTEST, ALICE", "PPFTEST, BOB") + "." + extra)
        code = extra[:3]
        assert refused.cls == "E" and refused.text.startswith(f".12. {code} IS NOT MINIMUM INFORMATION"), refused
    refused = health.request(f"MPP.OR999050H.NAM/PPFTEST, ALICE.NIC/{nic}.MIS/CASE HISTORY")
    assert refused.text.startswith(".12. MIS IS NOT MINIMUM INFORMATION"), refused
    # Positional form too: the minimum fields in catalogue order.
    positional = health.request("EPP.OR999050H.PPFTEST, CAROL.19820202.F..W")
    assert positional.cls == "R", positional.text
    # Not designated: a police department and the school bus office.
    police = running.signed_on(*POLICE)
    out = police.request(ENTRY.replace("OR999050H", "OR9990100"))
    assert out.cls == "E" and out.text.startswith(".22.") and "DESIGNATED" in out.text, out
    # The court and the PSRB are designated (appendix A).
    court = running.signed_on(*COURT)
    out = court.request(ENTRY.replace("OR999050H", "OR999060J").replace("ALICE", "DAVE"))
    assert out.cls == "R", out.text
    hit = police.request(QPP.replace("ALICE", "DAVE"))
    assert "COR/OR999060J" in hit.text and "WARNING - SUBJECT IS PROHIBITED FROM POSSESSING FIREARMS" in hit.text
    # Only the entering agency modifies or cancels its record.
    out = court.request(f"XPP.OR999060J.NAM/PPFTEST, ALICE.NIC/{nic}.DOC/20260103")
    assert out.cls == "E" and out.text.startswith(".22."), out


def test_qpp_needs_pur_f(running):
    police = running.signed_on(*POLICE)
    assert police.request("QPP.OR9990100.NAM/ROE, RICHARD.DOB/19750505.PUR/C").text.startswith(".22.")
    assert police.request("QPP.OR9990100.NAM/ROE, RICHARD.DOB/19750505").text.startswith(".13.")
    hit = police.request("QPP.OR9990100.NAM/ROE, RICHARD.DOB/19750505.PUR/F")
    assert "NIC/P000000001" in hit.text and "MKE/PROHIBITED PERSON" in hit.text
    # PPF data is returned for QPP only: a QW for the same person never shows it.
    qw = police.request("QW.OR9990100.NAM/ROE, RICHARD.DOB/19750505")
    assert "P000000001" not in qw.text and "PROHIBITED" not in qw.text, qw.text


# -- the emulated NICS, the transmission -----------------------------------------------------------

def test_transmission_sends_every_change_and_replies_carry_ntd_and_nrn(running):
    control = running.signed_on(*CONTROL)
    health = running.signed_on(*HEALTH)
    nic = nic_of(health.request(ENTRY).text)
    before = control.request("QDP.OR9990000.NAM/PPFTEST, ALICE.DOB/19810101")
    assert before.cls == "R" and before.text == "NO NICS RECORD NAM/PPFTEST, ALICE DOB/19810101", before
    reply = console(running, "ppf transmit")
    # The demo file's three records were never reported: they go too.
    assert reply.lines == [f"NICS TRANSMISSION {today(running)} - 4 ENTERED 0 MODIFIED 0 CANCELLED 0 RELIEF"]
    notice = wait_for(control, "NICS TRANSMISSION")
    assert notice.cls == "S" and notice.text == reply.lines[0]
    police = running.signed_on(*POLICE)
    hit = police.request(QPP)
    assert f"NTD/{today(running)}" in hit.text, hit.text
    nrn = nrn_of(hit.text)
    # NICS holds it: QDP by name and date of birth, and by NRN.
    for asked in ("NAM/PPFTEST, ALICE.DOB/19810101", f"NRN/{nrn}"):
        got = control.request(f"QDP.OR9990000.{asked}")
        assert got.cls == "R" and got.text.startswith("MKE/NICS INDEX - MENTAL HEALTH"), got
        assert f"NRN/{nrn}" in got.text and "NAM/PPFTEST, ALICE" in got.text and f"NIC/{nic}" in got.text
        assert "RELIEF GRANTED" not in got.text
    # QDP is the control terminal agency's only.
    assert police.request(f"QDP.OR9990100.NRN/{nrn}").text.startswith(".22.")
    # A modify and a cancel, then the next run sends just those.
    other = nic_of(health.request(ENTRY.replace("ALICE", "ERIN")).text)
    assert health.request(f"MPP.OR999050H.NAM/PPFTEST, ALICE.NIC/{nic}.ISD/20260111").cls == "R"
    gone = health.request(f"XPP.OR999050H.NAM/ROE, RICHARD.NIC/P000000001.DOC/20260103")
    assert gone.cls == "R" and f"NTD/{today(running)}" in gone.text and "NRN/NR" in gone.text, gone.text
    reply = console(running, "ppf transmit")
    assert reply.lines == [f"NICS TRANSMISSION {today(running)} - 1 ENTERED 1 MODIFIED 1 CANCELLED 0 RELIEF"]
    assert "ISD/20260111" in control.request(f"QDP.OR9990000.NRN/{nrn}").text
    assert control.request("QDP.OR9990000.NAM/ROE, RICHARD.DOB/19750505").text.startswith("NO NICS RECORD")
    assert "NRN/NR" in police.request(QPP.replace("ALICE", "ERIN")).text and other
    # Nothing left: a run says so, still one notice.
    assert console(running, "ppf transmit").lines == [
        f"NICS TRANSMISSION {today(running)} - 0 ENTERED 0 MODIFIED 0 CANCELLED 0 RELIEF"]


def test_nics_down_loses_nothing_and_the_next_run_sends_it(running):
    control = running.signed_on(*CONTROL)
    health = running.signed_on(*HEALTH)
    health.request(ENTRY)
    assert console(running, "nics down").lines == ["NICS WVNICS000 DOWN"]
    reply = console(running, "ppf transmit")
    assert reply.lines == ["NICS UNAVAILABLE - 4 CHANGES PENDING"]
    assert wait_for(control, "NICS UNAVAILABLE").text == "NICS UNAVAILABLE - 4 CHANGES PENDING"
    down = control.request("QDP.OR9990000.NAM/PPFTEST, ALICE.DOB/19810101")
    assert down.cls == "E" and down.text.startswith(".30. WVNICS000 NICS UNAVAILABLE"), down
    police = running.signed_on(*POLICE)
    assert "NRN/" not in police.request(QPP).text
    status = console(running, "status").lines
    assert any(re.search(r"ppf +\d+ records +4 pending transmission +0 relieved", line) for line in status), status
    assert console(running, "nics up").lines == ["NICS WVNICS000 UP"]
    reply = console(running, "ppf transmit")
    assert reply.lines == [f"NICS TRANSMISSION {today(running)} - 4 ENTERED 0 MODIFIED 0 CANCELLED 0 RELIEF"]
    assert "NRN/NR" in police.request(QPP).text
    # Journaled: the fault injection, each message to NICS and its answer, the runs.
    events = [r.event for r in running.call(lambda: Admin(running.switch).audit(limit=200))]
    for event in ("NICS DOWN", "NICS UP", "TO NICS", "NICS TRANSMISSION", "CONSOLE NICS", "CONSOLE PPF"):
        assert event in events, (event, events)


# -- relief ------------------------------------------------------------------------------------------

def test_relief_by_the_psrb_or_a_court_only_sent_to_nics_at_once(running):
    control = running.signed_on(*CONTROL)
    health = running.signed_on(*HEALTH)
    nic = nic_of(health.request(ENTRY).text)
    console(running, "ppf transmit")
    nrn = nrn_of(control.request("QDP.OR9990000.NAM/PPFTEST, ALICE.DOB/19810101").text)
    rpp = f"RPP.{{}}.NIC/{nic}.RLD/20260301.OCA/PSRB-26-0001"
    # The health authority is designated but grants no relief; a police department neither.
    assert health.request(rpp.format("OR999050H")).text.startswith(".22.")
    police = running.signed_on(*POLICE)
    assert police.request(rpp.format("OR9990100")).text.startswith(".22.")
    psrb = running.signed_on(*PSRB)
    out = psrb.request(rpp.format("OR999070S"))
    assert out.cls == "R" and "RELIEF GRANTED 20260301" in out.text, out.text
    assert f"RELIEF SENT TO NICS NRN/{nrn} NTD/{today(running)}" in out.text, out.text
    # On file, marked, and no longer a prohibition.
    hit = police.request(QPP)
    assert hit.text.startswith("RELIEF GRANTED 20260301"), hit.text
    assert "RLD/20260301" in hit.text and "WARNING - SUBJECT IS PROHIBITED" not in hit.text
    record = running.call(lambda: running.switch.router.ppf.find(nic))
    assert record.get("RLD") == "20260301" and not is_prohibition(record)
    # NICS has it now, before any daily run.
    got = control.request(f"QDP.OR9990000.NRN/{nrn}")
    assert "RELIEF GRANTED 20260301" in got.text, got.text
    # Twice is refused; the next daily run has nothing left to send.
    assert psrb.request(rpp.format("OR999070S")).cls == "E"
    assert console(running, "ppf transmit").lines[0].endswith("0 ENTERED 0 MODIFIED 0 CANCELLED 0 RELIEF")
    # A court, while NICS is down: relief waits and counts as RELIEF in the next run.
    other = nic_of(health.request(ENTRY.replace("ALICE", "FRANK")).text)
    console(running, "ppf transmit")
    console(running, "nics down")
    court = running.signed_on(*COURT)
    out = court.request(f"RPP.OR999060J.NIC/{other}.RLD/20260302")
    assert out.cls == "R" and "NICS UNAVAILABLE - RELIEF PENDING" in out.text, out.text
    console(running, "nics up")
    assert console(running, "ppf transmit").lines[0].endswith("0 ENTERED 0 MODIFIED 0 CANCELLED 1 RELIEF")
    status = console(running, "status").lines
    assert any("2 relieved" in line for line in status), status


# -- reconciliation -----------------------------------------------------------------------------------

def test_reconciliation_sends_each_discrepancy_to_the_submitting_agency(running):
    control = running.signed_on(*CONTROL)
    health = running.signed_on(*HEALTH)
    nic = nic_of(health.request(ENTRY).text)
    console(running, "ppf transmit")
    clean = console(running, "ppf reconcile").lines[0]
    assert clean == f"PPF RECONCILIATION {today(running)} - 4 RECORDS 0 DISCREPANCIES", clean
    assert wait_for(control, "PPF RECONCILIATION").text == clean
    nothing_more(health)
    nrn = nrn_of(control.request("QDP.OR9990000.NAM/PPFTEST, ALICE.DOB/19810101").text)
    assert console(running, f"nics forget {nrn}").lines == [f"NICS forgot NRN/{nrn}"]
    assert console(running, "nics forget NR9999999999").ok is False
    health.close()  # the discrepancy is queued for the agency while it is not connected
    summary = console(running, "ppf reconcile").lines[0]
    assert summary == f"PPF RECONCILIATION {today(running)} - 4 RECORDS 1 DISCREPANCIES", summary
    assert wait_for(control, "1 DISCREPANCIES").cls == "S"
    queued = console(running, "queue OR999050H").lines
    assert any("PPF RECONCILIATION DISCREPANCY" in line for line in queued), queued
    again = running.client("T0500001").connect()
    again.banner()
    notice = wait_for(again, "PPF RECONCILIATION DISCREPANCY")
    assert notice.cls == "U" and notice.text.startswith("PPF RECONCILIATION DISCREPANCY"), notice
    assert f"NIC/{nic} NRN/{nrn}" in notice.text and "NOT IN NICS" in notice.text
    # The next transmission sends it again, under a new number.
    assert console(running, "ppf transmit").lines[0].endswith("1 ENTERED 0 MODIFIED 0 CANCELLED 0 RELIEF")
    assert console(running, "ppf reconcile").lines[0].endswith("4 RECORDS 0 DISCREPANCIES")
    status = console(running, "status").lines
    assert any(line.startswith("reconciled") and "0 DISCREPANCIES" in line for line in status), status
    assert any(line.startswith("transmitted") and "NICS TRANSMISSION" in line for line in status), status


def test_the_icd_examples_of_section_11_are_accepted(running):
    """docs/ICD.md 11.1's examples, as written, from a terminal of each sending ORI."""
    from pathlib import Path

    icd = (Path(__file__).resolve().parent.parent / "docs" / "ICD.md").read_text()
    block = icd.split("**Examples** (each accepted by the demo home):", 1)[1].split("Entry, modify and cancel", 1)[0]
    examples = [line.strip() for line in block.splitlines() if line.startswith("    ")]
    assert len(examples) == 8, examples
    who = {"OR999050H": HEALTH, "OR999060J": COURT, "OR999070S": PSRB, "OR9990000": CONTROL, "OR9990100": POLICE}
    clients = {ori: running.signed_on(*w) for ori, w in who.items()}
    nic = None
    for text in examples:
        ori = text.split(".")[1]
        if text.startswith("QDP") and "NRN/" in text:
            console(running, "ppf transmit")
            nrn = nrn_of(clients[ori].request("QDP.OR9990000.NAM/ROE, RICHARD.DOB/19750505").text)
            text = text.replace("NR0000000001", nrn)
        if text.startswith("XPP"):  # cancel after the relief: relieve first, then cancel (reordered below)
            continue
        out = clients[ori].request(text.replace("<NIC>", nic or ""))
        assert out.cls == "R", (text, out.text)
        if text.startswith("EPP.OR999050H"):
            nic = nic_of(out.text)
    xpp = next(t for t in examples if t.startswith("XPP"))
    out = clients["OR999050H"].request(xpp.replace("<NIC>", nic))
    assert out.cls == "R", out.text


# -- the house ------------------------------------------------------------------------------------------

def test_an_older_home_names_designated_agencies_by_the_prohibited_entry_grant(home):
    from lems.base.registry import Registry

    agencies = home / "terminals" / "agencies.toml"
    text = agencies.read_text().replace("designated = true\n", "")
    text = text.replace('grants = ["firearms"]\ndmv_purposes = ""\napproved_purpose = "MENTAL',
                        'grants = ["firearms", "prohibited-entry"]\ndmv_purposes = ""\napproved_purpose = "MENTAL')
    agencies.write_text(text)
    registry = Registry.load(home / "terminals")
    assert registry.agencies["OR999050H"].designated
    assert not registry.agencies["OR999060J"].designated and not registry.agencies["OR9990100"].designated


def test_nics_settings(home):
    from lems.base.conf import ConfError, Settings

    nics = Settings.load(home).nics
    assert (nics.transmit_at, nics.reconcile_months, nics.destination) == ("02:00", 3, "WVNICS000")
    for bad, why in (({"transmit_at": "2am"}, "transmit_at"), ({"reconcile_months": 0}, "reconcile_months"),
                     ({"destination": "NICS"}, "destination"), ({"when": 1}, "unknown settings")):
        with pytest.raises(ConfError, match=why):
            Settings.from_dict(home, {"listener": [{"name": "t"}], "nics": bad})


def test_nics_numbers_are_never_given_twice(tmp_path):
    from lems.base.clock import FakeClock
    from lems.files.handlers import HandlerContext
    from lems.store import Store
    from lems.traffic.nics import EmulatedNics
    from lems.traffic.remotes import RemoteRefused, RemoteUnavailable
    from lems.wire.message import Message

    store = Store.open(tmp_path / "s.sqlite")
    nics = EmulatedNics(HandlerContext(tmp_path, None, None, store, FakeClock(), {}))
    first = nics.submit(Message("EDP", "OR999050H", (("NIC", "P000100000"), ("NAM", "ROE, A"), ("DOB", "19700101"))))
    assert first == "EDP ACCEPTED NRN/NR0000000001"
    assert nics.forget("NR0000000001") and not nics.forget("NR0000000001")
    second = nics.submit(Message("EDP", "OR999050H", (("NIC", "P000100000"), ("NAM", "ROE, A"))))
    assert second == "EDP ACCEPTED NRN/NR0000000002"
    with pytest.raises(RemoteRefused, match="NOT ON FILE"):
        nics.submit(Message("MDP", "OR999050H", (("NRN", "NR0000000001"), ("NIC", "P000100000"))))
    nics.set_available(False)
    with pytest.raises(RemoteUnavailable):
        nics.submit(Message("XDP", "OR999050H", (("NRN", "NR0000000002"),)))
    nics.set_available(True)
    assert nics.submit(Message("XDP", "OR999050H", (("NRN", "NR0000000002"),))) == "XDP ACCEPTED NRN/NR0000000002"
    assert nics.report() == []


def test_reconciliation_finds_fields_that_differ_and_records_not_in_the_ppf(running):
    """Changes NICS has not had (it was down) are discrepancies against the PPF as it is now."""
    control = running.signed_on(*CONTROL)
    health = running.signed_on(*HEALTH)
    nic = nic_of(health.request(ENTRY).text)
    console(running, "ppf transmit")
    nrn = nrn_of(health.request(f"MPP.OR999050H.NAM/PPFTEST, ALICE.NIC/{nic}.ISD/20260111").text)
    console(running, "nics down")
    assert health.request("XPP.OR999050H.NAM/ROE, RICHARD.NIC/P000000001.DOC/20260103").cls == "R"
    assert console(running, "ppf transmit").lines == ["NICS UNAVAILABLE - 2 CHANGES PENDING"]
    console(running, "nics up")
    summary = console(running, "ppf reconcile").lines[0]
    assert summary == f"PPF RECONCILIATION {today(running)} - 4 RECORDS 2 DISCREPANCIES", summary
    differs = wait_for(health, f"NIC/{nic}")
    assert differs.text.split("\n")[:4] == ["PPF RECONCILIATION DISCREPANCY", f"NIC/{nic} NRN/{nrn}", "FIELDS DIFFER",
                                            "NAM/PPFTEST, ALICE DOB/19810101"], differs.text
    assert "ISD PPF/20260111 NICS/20260101" in differs.text
    gone = wait_for(health, "NIC/P000000001")
    assert "IN NICS - NOT IN THE PPF (CANCELLED)" in gone.text, gone.text
    # The pending changes mend both.
    assert console(running, "ppf transmit").lines[0].endswith("0 ENTERED 1 MODIFIED 1 CANCELLED 0 RELIEF")
    # The cancelled record is in neither now: three records compared.
    assert console(running, "ppf reconcile").lines[0].endswith(" - 3 RECORDS 0 DISCREPANCIES")
    assert control.request(f"QDP.OR9990000.NRN/{nrn}").text.count("ISD/20260111") == 1


MFC = st.text(string.ascii_uppercase, min_size=3, max_size=3)


@settings(max_examples=200, deadline=None)
@given(MFC, st.text(string.ascii_uppercase + string.digits + " ", min_size=1, max_size=12).map(str.strip)
       .filter(bool), st.sampled_from(["EPP", "MPP"]), st.booleans())
def test_any_field_but_the_minimum_information_is_refused(code, value, mke, first):
    """Whatever the code and wherever it stands, a PPF entry or modify takes nothing else."""
    from lems.base.errors import Reject
    from lems.traffic.ppf import MINIMUM

    base = {"EPP": ["NAM/ROE, TESTER", "DOB/19760606", "SEX/M"], "MPP": ["NAM/ROE, TESTER", "NIC/P000100000"]}[mke]
    fields = [f"{code}/{value}", *base] if first else [*base, f"{code}/{value}"]
    text = ".".join([mke, "OR999050H", *fields])
    if code in MINIMUM or code == "NIC" or (code in CODEC.spec(mke).fields):
        return  # a field of the key: its own format rules apply
    with pytest.raises(Reject) as refused:
        CODEC.parse(text)
    assert (refused.value.code, refused.value.reason) == (".12.", f"{code} IS NOT MINIMUM INFORMATION")
