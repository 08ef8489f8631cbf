"""Nlets-style inquiries end to end over TLS (PROTOCOL.md 5.3): RQ, DQ, KQ, IQ, FQ, AQ,
BQ and CPQ to a state, to NL, to an agency's ORI, and to several destinations at once."""

from __future__ import annotations

import re

import pytest
from test_delivery import wait_for
from test_plugins import install_plugin, route_state_to

# The service's FakeClock stands at 2026-11-03 15:00 UTC.
RECEIVED = re.compile(r"^1500 11032026 (\d{5})$")
SENT = re.compile(r"^1500 11032026 (\d{5}) (\w{9})$")


def police(running):
    return running.signed_on("T0100001", "OR9990100", "OP010001")


def sections(reply) -> list[list[str]]:
    """The reply's sections (empty line between them), each as its lines."""
    return [s.split("\n") for s in reply.text.split("\n\n")]


def state_section(lines: list[str], key: str, ori: str, control: str | None = None,
                  requester: str = "OR9990100") -> list[str]:
    """Check a state's three-line header, the control line and TXT; return the body lines."""
    assert lines[0] == f"{key}.{ori}", lines
    assert RECEIVED.match(lines[1]), lines[1]
    sent = SENT.match(lines[2])
    assert sent and sent.group(2) == requester, lines[2]
    at = 3
    if control:
        assert lines[at] == f"*{control}"
        at += 1
    assert not any(line.startswith("*") for line in lines[3:at + 1] if line != f"*{control}")
    assert lines[at] == "TXT", lines
    return lines[at + 1:]


def journal_seq_of_input(running, ref: str) -> int:
    rows = running.call(lambda: running.switch.store.conn.execute(
        "SELECT seq FROM journal WHERE kind = 'in' AND ref = ?", (ref,)).fetchall())
    assert len(rows) == 1
    return rows[0][0]


# -- appendix C -------------------------------------------------------------------------------


def test_rq_to_oregon_with_control(running):
    reply = police(running).request("RQ.OR9990100.OR.*CTL0000001.TXTLIC/TEST123")
    assert reply.cls == "R", reply.text
    [lines] = sections(reply)
    body = state_section(lines, "RR", "OR0000000", "CTL0000001")
    # Sequence numbers: the input's journal record, and this very frame's OSN.
    assert int(RECEIVED.match(lines[1]).group(1)) == journal_seq_of_input(running, reply.ref) % 100000
    assert int(SENT.match(lines[2]).group(1)) == reply.osn
    assert body[0] == "MKE/VEHICLE REGISTRATION"
    for line in ("LIC/TEST123", "LIS/OR", "VIN/1TESTVIN000000001", "NAM/DOE, JOHN Q",
                 "ORI IS LEMS TEST CONTROL TERMINAL AGENCY", "NIC/R000000001 DTE/20240215"):
        assert line in body
    assert body[-1] == "NIC/R000000001 DTE/20240215"  # a registration is not a hot record: no IMMED CONFIRM
    assert not any("IMMED CONFIRM" in line for line in body)


def test_rq_to_washington_from_the_fixed_width_extract(running):
    reply = police(running).request("RQ.OR9990100.WA.TXTLIC/WATEST1")
    assert reply.cls == "R", reply.text
    [lines] = sections(reply)
    body = state_section(lines, "RR", "WA0000000")
    assert "LIC/WATEST1" in body and "VIN/7TESTVIN000000007" in body and "NAM/DOE, JOHN Q" in body
    assert "ORI IS TEST WASHINGTON CITY PD" in body and "NIC/R000000005 DTE/20240510" in body


def test_dq_to_nl_answers_every_state_and_summarises(running):
    reply = police(running).request("DQ.OR9990100.NL.TXTNAM/DOE, JOHN Q.DOB/19800101")
    assert reply.cls == "R", reply.text
    oregon, washington, summary = sections(reply)
    assert "OLN/TEST0001" in state_section(oregon, "DR", "OR0000000")
    assert "OLN/WDL0TEST001" in state_section(washington, "DR", "WA0000000")
    assert oregon[1:3] == washington[1:3]  # one input, one output frame
    assert summary == ["NL SUMMARY - 2 STATES QUERIED", "ANSWERED: OR WA", "HIT: OR WA", "NO RECORD: NONE",
                       "NO ANSWER: NONE"]


def test_school_bus_dq_to_oregon_with_purpose_f(running):
    c = running.signed_on("T0400001", "OR999040Y", "OP040001")
    reply = c.request("DQ.OR999040Y.OR.TXTNAM/DOE, JOHN Q.DOB/19800101.PUR/F")
    assert reply.cls == "R", reply.text
    [lines] = sections(reply)
    body = state_section(lines, "DR", "OR0000000", requester="OR999040Y")
    assert "OLN/TEST0001" in body and "DLS/VALID" in body


# -- hit and no hit, RQ and DQ to OR, WA and NL ----------------------------------------------------


@pytest.mark.parametrize("text, found", [
    ("RQ.OR9990100.OR.TXTLIC/TEST123", "NIC/R000000001 DTE/20240215"),
    ("RQ.OR9990100.OR.TXTVIN/1TESTVIN000000001", "NIC/R000000001 DTE/20240215"),
    ("RQ.OR9990100.WA.TXTVIN/7TESTVIN000000007", "NIC/R000000005 DTE/20240510"),
    ("DQ.OR9990100.OR.TXTOLN/TEST0001", "NIC/D000000001 DTE/20220101"),
    ("DQ.OR9990100.WA.TXTOLN/WDL0TEST001", "NIC/D000000004 DTE/20240301"),
    ("DQ.OR9990100.WA.TXTNAM/SAMPLE, DAVID.DOB/19900315", "NIC/D000000005 DTE/20230909"),
])
def test_single_state_hit(running, text, found):
    reply = police(running).request(text)
    assert reply.cls == "R", reply.text
    [lines] = sections(reply)
    key, state = text[0] + "R", text.split(".")[2]
    body = state_section(lines, key, f"{state}0000000")
    assert body[0].startswith("MKE/") and found in body


@pytest.mark.parametrize("text, line", [
    ("RQ.OR9990100.OR.TXTLIC/NOSUCH1", "NO RECORD LIC/NOSUCH1"),
    ("RQ.OR9990100.WA.TXTLIC/TEST123", "NO RECORD LIC/TEST123"),       # an Oregon plate is not in WA
    ("DQ.OR9990100.OR.TXTOLN/WDL0TEST001", "NO RECORD OLN/WDL0TEST001"),
    ("DQ.OR9990100.WA.TXTNAM/ROE, JANE A.DOB/19851212.SEX/F", "NO RECORD NAM/ROE, JANE A DOB/19851212 SEX/F"),
])
def test_single_state_no_record(running, text, line):
    reply = police(running).request(text)
    assert reply.cls == "R", reply.text
    [lines] = sections(reply)
    assert state_section(lines, text[0] + "R", f"{text.split('.')[2]}0000000") == [line]


@pytest.mark.parametrize("text, hit, none", [
    ("RQ.OR9990100.NL.TXTLIC/WATEST1", "WA", "OR"),
    ("RQ.OR9990100.NL.TXTLIC/TEST123", "OR", "WA"),
    ("DQ.OR9990100.NL.TXTOLN/TEST0003", "OR", "WA"),
    ("RQ.OR9990100.NL.TXTLIC/NOSUCH1", "NONE", "OR WA"),
    ("DQ.OR9990100.NL.TXTNAM/NOBODY, NEVER.DOB/19000101", "NONE", "OR WA"),
])
def test_nl_hit_and_no_record(running, text, hit, none):
    reply = police(running).request(text)
    assert reply.cls == "R", reply.text
    oregon, washington, summary = sections(reply)
    key = text[0] + "R"
    for state, lines in (("OR", oregon), ("WA", washington)):
        body = state_section(lines, key, f"{state}0000000")
        if state in hit.split():
            assert body[0].startswith("MKE/")
        else:
            assert len(body) == 1 and body[0].startswith("NO RECORD ")
    assert summary == ["NL SUMMARY - 2 STATES QUERIED", "ANSWERED: OR WA", f"HIT: {hit}", f"NO RECORD: {none}",
                       "NO ANSWER: NONE"]


# -- the other inquiry keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, reply_key, state, found", [
    ("KQ.OR9990100.OR.TXTOLN/TEST0001.PUR/C.ATN/DET TEST", "KR", "OR", "NIC/K000000001 DTE/20250314"),
    ("KQ.OR9990100.WA.TXTNAM/SAMPLE, DAVID.DOB/19900315.PUR/C.ATN/DET TEST", "KR", "WA",
     "20240918 CONV DUI - LICENSE REVOKED 1 YEAR"),  # the printed record as plain lines
    # The home state answers criminal history from the state (LEDS) file.
    ("IQ.OR9990100.OR.TXTNAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/C.ATN/DET TEST", "IR", "OR",
     "NIC/I000000002 DTE/20250314"),
    ("IQ.OR9990100.WA.TXTNAM/SAMPLE, DAVID.SEX/M.RAC/W.DOB/19900315.PUR/C.ATN/DET TEST", "IR", "WA",
     "NIC/I000000005 DTE/20250120"),
    ("FQ.OR9990100.OR.TXTSID/OR90000001.PUR/C.ATN/DET TEST", "FR", "OR", "SID/OR90000001"),
    ("AQ.OR9990100.WA.TXTSID/WA90000005.PUR/J.ATN/CLERK TEST", "AR", "WA", "FBI/TST000005"),
    ("BQ.OR9990100.OR.TXTREG/OR999TEST", "BR", "OR", "NIC/E000000001 DTE/20230501"),
    ("BQ.OR9990100.WA.TXTBHN/TSTB0002B525", "BR", "WA", "REG/WA9999TB"),
    ("CPQ.OR9990100.OR.TXTNAM/PAROLEE, TEST T.DOB/19790612", "CPR", "OR", "CST/PAROLE"),
    ("CPQ.OR9990100.WA.TXTSID/WA90000008", "CPR", "WA", "NAM/PROBATIONER, AMY"),
])
def test_other_inquiry_keys_hit(running, text, reply_key, state, found):
    reply = police(running).request(text)
    assert reply.cls == "R", reply.text
    [lines] = sections(reply)
    body = state_section(lines, reply_key, f"{state}0000000")
    assert body[0].startswith("MKE/") and found in body
    assert "PUR/" not in "\n".join(body) and "ATN/" not in "\n".join(body)


def test_criminal_history_prints_a_rap_sheet(running):
    """PROTOCOL.md 5.2: IQ/FQ print the record's text as plain lines after its identification fields."""
    reply = police(running).request("FQ.OR9990100.OR.TXTSID/OR90000001.PUR/C.ATN/DET TEST")
    [lines] = sections(reply)
    body = state_section(lines, "FR", "OR0000000")
    assert body[0] == "MKE/CRIMINAL HISTORY" and "SID/OR90000001" in body
    rap = body.index("OREGON COMPUTERIZED CRIMINAL HISTORY - TEST RECORD")
    assert body[rap - 1] == "FBI/TST000001" and "END OF TEST RECORD" in body[rap:]
    assert not any(line.startswith("RTX/") or "IMMED CONFIRM" in line for line in body), body


def test_criminal_history_no_record_leaves_out_purpose_and_attention(running):
    reply = police(running).request("FQ.OR9990100.WA.TXTSID/WA12345678.PUR/C.ATN/DET TEST")
    [lines] = sections(reply)
    assert state_section(lines, "FR", "WA0000000") == ["NO RECORD SID/WA12345678"]


def test_single_state_key_to_nl_is_refused(running):
    reply = police(running).request("KQ.OR9990100.NL.TXTOLN/TEST0001.PUR/C.ATN/DET TEST")
    assert reply.cls == "E" and reply.text.startswith(".01. NL - KQ IS A SINGLE STATE INQUIRY")


# -- destinations --------------------------------------------------------------------------------------


def test_unconfigured_state_alone_is_a_01_reject(running):
    reply = police(running).request("RQ.OR9990100.ZZ.TXTLIC/TEST123")
    assert reply.cls == "E"
    assert reply.text.split("\n") == [".01. ZZ NOT A CONFIGURED STATE - DESTINATION DOES NOT ACCEPT RQ",
                                      "ORIGINAL MESSAGE", "RQ.OR9990100.ZZ.TXTLIC/TEST123"]


def test_unconfigured_state_beside_an_answering_one_is_a_01_section(running):
    reply = police(running).request("RQ.OR9990100.ZZ,OR.TXTLIC/TEST123")
    assert reply.cls == "R", reply.text
    refused, oregon = sections(reply)
    assert refused == [".01. ZZ NOT A CONFIGURED STATE - DESTINATION DOES NOT ACCEPT RQ"]
    assert "NIC/R000000001 DTE/20240215" in state_section(oregon, "RR", "OR0000000")


@pytest.mark.parametrize("dests, order", [("OR,WA", ["OR", "WA"]), ("WA,OR", ["WA", "OR"])])
def test_two_destinations_one_frame_in_destination_order(running, dests, order):
    reply = police(running).request(f"RQ.OR9990100.{dests}.*TWO.TXTLIC/TEST123")
    assert reply.cls == "R", reply.text
    parts = sections(reply)
    assert [p[0] for p in parts] == [f"RR.{s}0000000" for s in order]
    answers = {s: state_section(p, "RR", f"{s}0000000", "TWO") for s, p in zip(order, parts)}
    assert "NIC/R000000001 DTE/20240215" in answers["OR"]
    assert answers["WA"] == ["NO RECORD LIC/TEST123"]
    assert {int(SENT.match(p[2]).group(1)) for p in parts} == {reply.osn}


def test_state_named_twice_through_nl_is_answered_once(running):
    reply = police(running).request("RQ.OR9990100.OR,NL.TXTLIC/TEST123")
    assert [p[0] for p in sections(reply)] == ["RR.OR0000000", "RR.WA0000000", "NL SUMMARY - 2 STATES QUERIED"]


def test_state_ori_is_answered_by_the_state(running):
    reply = police(running).request("RQ.OR9990100.WA0000000.TXTLIC/WATEST1")
    [lines] = sections(reply)
    assert "NIC/R000000005 DTE/20240510" in state_section(lines, "RR", "WA0000000")


def test_inquiry_to_an_offline_agency_is_queued_with_a_02_notice(running):
    c = police(running)
    text = "RQ.OR9990100.OR9990200.*ORICTL.TXTLIC/TEST123.LIY/2026"
    reply = c.request(text)
    assert reply.cls == "R"
    assert reply.text.split("\n") == ["RQ ACCEPTED FOR OR9990200", "*ORICTL",
                                      "OR9990200 QUEUED - NOT CONNECTED, WILL FORWARD"]
    notice = wait_for(c, ".02.")
    assert notice.cls == "S" and notice.ref == reply.ref
    assert notice.text.split("\n") == [".02. DESTINATION OUT OF SERVICE, MESSAGE QUEUED, WILL FORWARD - OR9990200",
                                       "*ORICTL", "ORIGINAL MESSAGE", text]
    county = running.signed_on("T0200001", "OR9990200", "OP020001")
    got = wait_for(county, "LIC/TEST123")
    assert got.cls == "U"
    assert got.text.split("\n") == ["RQ.OR9990100.OR9990200", "*ORICTL", "TXT", "LIC/TEST123.LIY/2026"]


def test_inquiry_to_a_connected_agency_beside_a_state(running):
    c = police(running)
    county = running.signed_on("T0200001", "OR9990200", "OP020001")
    reply = c.request("DQ.OR9990100.OR,OR9990200.TXTOLN/TEST0001")
    assert reply.cls == "R", reply.text
    oregon, agency = sections(reply)
    assert "NIC/D000000001 DTE/20220101" in state_section(oregon, "DR", "OR0000000")
    assert agency == ["DQ ACCEPTED FOR OR9990200", "OR9990200 DELIVERED"]
    assert wait_for(county, "OLN/TEST0001").text.split("\n") == ["DQ.OR9990100.OR9990200", "TXT", "OLN/TEST0001"]
    assert not [f for f in c.unsolicited if ".02." in f.text]


def test_unknown_agency_ori_is_a_01(running):
    reply = police(running).request("RQ.OR9990100.OR9990999.TXTLIC/TEST123")
    assert reply.cls == "E" and reply.text.startswith(".01. UNKNOWN DESTINATION OR9990999")


def test_group_name_is_not_an_inquiry_destination(running):
    reply = police(running).request("RQ.OR9990100.APB,OR.TXTLIC/TEST123")
    assert reply.cls == "R"
    assert sections(reply)[0] == [".01. APB IS NOT A STATE CODE, NL OR AN ORI - DESTINATION DOES NOT ACCEPT RQ"]


# -- a state whose handler fails ---------------------------------------------------------------------------


def test_failing_state_is_a_30_section_and_no_answer_in_the_nl_summary(home, switch_factory):
    install_plugin(home, "failing_handler")
    route_state_to(home, "WA", "down", "failing_handler:FailingHandler")
    running = switch_factory()
    c = police(running)
    reply = c.request("DQ.OR9990100.NL.TXTNAM/DOE, JOHN Q.DOB/19800101")
    assert reply.cls == "R", reply.text
    oregon, washington, summary = sections(reply)
    assert "OLN/TEST0001" in state_section(oregon, "DR", "OR0000000")
    assert washington == [".30. WA WASHINGTON FILE HANDLER UNAVAILABLE OR FAILED - NO ANSWER"]
    assert summary == ["NL SUMMARY - 2 STATES QUERIED", "ANSWERED: OR", "HIT: OR", "NO RECORD: NONE",
                       "NO ANSWER: WA"]
    # Named directly, beside a state that answers: a .30. section; alone: a .30. reject.
    both = c.request("RQ.OR9990100.WA,OR.TXTLIC/TEST123")
    assert both.cls == "R" and sections(both)[0] == [
        ".30. WA WASHINGTON FILE HANDLER UNAVAILABLE OR FAILED - NO ANSWER"]
    alone = c.request("RQ.OR9990100.WA.TXTLIC/WATEST1")
    assert alone.cls == "E" and alone.text.startswith(".30. WA WASHINGTON")


def test_replay_ignores_only_the_header_times_and_sequence_numbers(running, clock):
    from lems.tools import replay

    c = police(running)
    first = c.request("RQ.OR9990100.OR,NL.*RPL.TXTLIC/TEST123")
    clock.advance(3600)
    second = c.request("RQ.OR9990100.OR,NL.*RPL.TXTLIC/TEST123")
    assert first.text != second.text  # later, and other sequence numbers
    recorded = {"cls": first.cls, "text": first.text}
    assert replay.compare(recorded, second, replay.NicMap()) is None
    other = c.request("RQ.OR9990100.OR,NL.*RPL.TXTLIC/WATEST1")
    assert replay.compare(recorded, other, replay.NicMap()) is not None


def test_output_sequence_is_the_reply_osn_even_after_a_delivery_to_the_senders_own_terminal(running):
    c = police(running)
    reply = c.request("RQ.OR9990100.OR9990100,OR.TXTLIC/TEST123")
    assert reply.cls == "R", reply.text
    agency, oregon = sections(reply)
    assert agency[0] == "RQ ACCEPTED FOR OR9990100" and agency[1].startswith("OR9990100 DELIVERED")
    state_section(oregon, "RR", "OR0000000")
    assert int(SENT.match(oregon[2]).group(1)) == reply.osn
    own = wait_for(c, "LIC/TEST123")  # the copy for the sender's own terminal came first
    assert own.cls == "U" and own.osn < reply.osn
