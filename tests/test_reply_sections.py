"""Replies that read like LEDS (PROTOCOL.md 5.2, as amended), over real TLS to a running switch.

* a reply that searched both record sets has a section per set, each under its
  heading line, ``LEDS RESPONSE`` then ``NCIC RESPONSE``;
* each hit ends with its own file's instruction line (files.toml ``confirm_line``),
  and files that are not hit-confirmed have none;
* a criminal history prints its record as rap-sheet lines, not ``RTX/`` pairs.

The demo records used: DOE, JOHN Q 19800101 is wanted in both sets (W000000001 LEDS,
W000000002 NCIC), has a protection order in LEDS (H000000001) and a criminal
history in both (I000000002 LEDS, I000000001 NCIC).
"""

from __future__ import annotations

import pytest

QW = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"
QH = "QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/C.ATN/DET TEST"
HEADINGS = ("LEDS RESPONSE", "NCIC RESPONSE")


def sections(text: str) -> dict[str, list[str]]:
    """The reply's lines by heading; asserts the headings come first and in order, state first."""
    lines = text.split("\n")
    assert lines[0] == "LEDS RESPONSE", lines[:3]
    at = lines.index("NCIC RESPONSE")
    assert [line for line in lines if line in HEADINGS] == list(HEADINGS)
    return {"LEDS": lines[1:at], "NCIC": lines[at + 1:]}


def block(lines: list[str], nic: str) -> list[str]:
    """One hit block: from its caution/MKE line to its trailer and the line after, if any."""
    end = next(i for i, line in enumerate(lines) if line.startswith(f"NIC/{nic} "))
    start = max(i for i, line in enumerate(lines[:end]) if line.startswith("MKE/"))
    while start > 0 and lines[start - 1].startswith(("WARNING", "CAUTION")):
        start -= 1
    tail = lines[end + 1:end + 2]
    return lines[start:end + 1] + [t for t in tail if not t.startswith(("MKE/", "WARNING", "CAUTION"))]


@pytest.fixture
def police(running):
    return running.signed_on("T0100001", "OR9990100", "OP010001")


def test_qw_has_a_leds_and_an_ncic_section(police):
    reply = police.request(QW)
    assert reply.cls == "R", reply.text
    by_set = sections(reply.text)
    leds, ncic = by_set["LEDS"], by_set["NCIC"]
    assert "NIC/W000000001 DTE/20250314" in leds and "NIC/H000000001 DTE/20250220" in leds
    assert "NIC/W000000002 DTE/20250314" in ncic and not any(line.startswith("NIC/W000000001") for line in ncic)
    assert not any(line.startswith("NO ") for line in leds + ncic)
    wanted = block(ncic, "W000000002")
    assert wanted[:2] == ["WARNING - SUBJECT MAY BE ARMED AND DANGEROUS", "MKE/WANTED PERSON"]
    assert wanted[-1] == "IMMED CONFIRM WARRANT AND EXTRADITION WITH ORI"


def test_a_protection_order_hit_has_its_own_confirm_line(police):
    leds = sections(police.request(QW).text)["LEDS"]
    order = block(leds, "H000000001")
    assert order[0] == "WARNING - THE FOLLOWING IS A PROTECTION ORDER - CONTACT THE ISSUING AGENCY"
    assert order[1] == "MKE/PROTECTION ORDER"
    assert order[-2:] == ["NIC/H000000001 DTE/20250220", "CONFIRM PROTECTION ORDER WITH ORI"]
    assert not any("WARRANT AND EXTRADITION" in line for line in order)


def test_no_record_line_goes_under_its_heading(police):
    reply = police.request("QV.OR9990100.LIC/NOSUCH1.LIS/OR")
    assert reply.text.split("\n") == ["LEDS RESPONSE", "NO LEDS RECORD LIC/NOSUCH1 LIS/OR",
                                      "NCIC RESPONSE", "NO NCIC RECORD LIC/NOSUCH1 LIS/OR"]


def test_qh_prints_a_rap_sheet_and_no_confirm_line(police):
    reply = police.request(QH)
    assert reply.cls == "R", reply.text
    by_set = sections(reply.text)
    for record_set, nic, first_text_line in (
            ("LEDS", "I000000002", "OREGON COMPUTERIZED CRIMINAL HISTORY - TEST RECORD"),
            ("NCIC", "I000000001", "FBI/TST000001  SID/OR90000001  NAME DOE, JOHN Q")):
        lines = by_set[record_set]
        assert lines[0] == "MKE/CRIMINAL HISTORY" and lines[1] == "NAM/DOE, JOHN Q"
        rap = lines.index(first_text_line)
        assert all("/" in line and line[3] == "/" for line in lines[1:rap])  # identification fields
        assert "END OF TEST RECORD" in lines[rap:]
        assert lines[-2:] == ["ORI IS LEMS TEST CONTROL TERMINAL AGENCY", f"NIC/{nic} DTE/20250314"]
        assert not any(line.startswith("RTX/") for line in lines), lines
        assert not any("CONFIRM" in line for line in lines), lines
    assert "  CHARGE 1 ASSAULT II - DISPOSITION PENDING" in by_set["NCIC"]


def test_a_single_set_inquiry_has_no_heading(police):
    """QPP searches the state file only: nothing to tell apart, no heading."""
    reply = police.request("QPP.OR9990100.NAM/DOE, JANE.DOB/19900101.PUR/F")
    assert reply.cls == "R", reply.text
    assert not any(line in HEADINGS for line in reply.text.split("\n")), reply.text
