"""Agency-to-agency traffic end to end: AM, AML, SM, queues, acknowledgements (PROTOCOL.md 4.9, 5.3, 5.5, 6)."""

from __future__ import annotations

import time

import pytest
from conftest import edit_registry

from lems.tools.client import ReplyTimeout, TerminalClient
from lems.traffic.delivery import GroupError, load_groups
from lems.wire.headers import Output

AM = "AM.OR9990100.OR9990200.*AMCTL00001.TXTPLEASE CALL RECORDS RE CASE ACC-0001"


def wait_for(c: TerminalClient, needle: str, timeout: float = 5) -> Output:
    """The next U or S frame containing ``needle`` (frames already set aside included)."""
    for i, out in enumerate(c.unsolicited):
        if needle in out.text:
            return c.unsolicited.pop(i)
    deadline = time.monotonic() + timeout
    while True:
        out = c.receive(max(0.05, deadline - time.monotonic()))
        if out.cls in ("U", "S") and needle in out.text:
            return out
        if out.cls in ("U", "S"):
            c.unsolicited.append(out)


def nothing_more(c: TerminalClient, seconds: float = 0.3) -> None:
    with pytest.raises(ReplyTimeout):
        c.receive(seconds)


def sender(running):
    return running.signed_on("T0100001", "OR9990100", "OP010001")




def test_am_to_offline_agency_is_queued_and_delivered_on_connect(running):
    c = sender(running)
    reply = c.request(AM)
    assert reply.cls == "R"
    assert reply.text.split("\n") == ["AM ACCEPTED FOR OR9990200", "*AMCTL00001",
                                      "OR9990200 QUEUED - NOT CONNECTED, WILL FORWARD"]
    notice = wait_for(c, ".02.")
    assert notice.cls == "S" and notice.ref == reply.ref
    assert notice.text.split("\n") == [
        ".02. DESTINATION OUT OF SERVICE, MESSAGE QUEUED, WILL FORWARD - OR9990200", "*AMCTL00001",
        "ORIGINAL MESSAGE", AM]
    assert [f.terminal for f in running.call(running.switch.router.delivery.queue_for, "OR9990200")] == ["T0200001"]

    d = running.signed_on("T0200001", "OR9990200", "OP020001")
    got = wait_for(d, "PLEASE CALL")
    assert got.cls == "U" and got.ref == ""
    assert got.text.split("\n") == ["AM.OR9990100.OR9990200", "*AMCTL00001", "TXT",
                                    "PLEASE CALL RECORDS RE CASE ACC-0001"]
    assert running.call(running.switch.router.delivery.depths) == {}


def test_queued_am_survives_restart(switch_factory):
    first = switch_factory()
    assert first.signed_on("T0100001", "OR9990100", "OP010001").request(AM).cls == "R"
    first.stop()
    second = switch_factory()
    d = second.signed_on("T0200001", "OR9990200", "OP020001")
    got = wait_for(d, "PLEASE CALL")
    assert got.text.startswith("AM.OR9990100.OR9990200\n*AMCTL00001\nTXT\n")


def test_live_delivery_and_aml_line(running):
    c = sender(running)
    d = running.signed_on("T0200001", "OR9990200", "OP020001")
    reply = c.request("AML.OR9990100.OR9990200.TXTOFFICER SAFETY BULLETIN TEST")
    assert reply.text.split("\n") == ["AML ACCEPTED FOR OR9990200", "OR9990200 DELIVERED"]
    got = wait_for(d, "BULLETIN")
    assert got.text.split("\n") == ["AML.OR9990100.OR9990200", "TXT", "FOR LAW ENFORCEMENT DISSEMINATION ONLY",
                                    "OFFICER SAFETY BULLETIN TEST"]
    assert not [f for f in c.unsolicited if ".02." in f.text]


def test_sm_to_apb_reaches_every_connected_terminal_of_the_group(running):
    control = running.signed_on("T0000001", "OR9990000", "OP000001")
    city = sender(running)
    county = running.signed_on("T0200001", "OR9990200", "OP020001")
    reply = control.request("SM.OR9990000.APB.*SMCTL.TXTLEMS TEST STATUS NOTICE")
    assert reply.cls == "R" and reply.text.startswith("SM ACCEPTED FOR APB\n*SMCTL\n")
    assert "OR9990100 DELIVERED" in reply.text and "OR9990200 DELIVERED" in reply.text
    assert "OR9990000" not in reply.text.split("\n", 2)[2]   # not back to the sender
    assert "WA9990100" not in reply.text                    # APB is in-state only
    for c in (city, county):
        got = wait_for(c, "STATUS NOTICE")
        assert got.cls == "S"
        assert got.text.split("\n") == ["SM.OR9990000.APB", "*SMCTL", "TXT", "LEMS TEST STATUS NOTICE"]


def test_sm_only_from_the_control_terminal_agency(running):
    reply = sender(running).request("SM.OR9990100.APB.TXTNOT ALLOWED")
    assert reply.cls == "E" and reply.text.startswith(".22.")


def test_sm_overtakes_queued_ordinary_traffic(running):
    sender(running).request(AM)
    control = running.signed_on("T0000001", "OR9990000", "OP000001")
    assert control.request("SM.OR9990000.OR9990200.TXTSWITCH MAINTENANCE AT 2200").cls == "R"
    d = running.client("T0200001").connect()
    assert "MONITORED" in d.receive().text
    first, second = d.receive(), d.receive()
    assert (first.cls, first.text.split("\n")[0]) == ("S", "SM.OR9990000.OR9990200")
    assert (second.cls, second.text.split("\n")[0]) == ("U", "AM.OR9990100.OR9990200")
    assert first.osn < second.osn


def test_state_code_and_broadcast_dedupe(running):
    c = sender(running)
    reply = c.request("AM.OR9990100.OR,APB.TXTTWO WAYS TO THE SAME AGENCIES")
    lines = reply.text.split("\n")
    reached = [line.split()[0] for line in lines[1:]]
    assert len(reached) == len(set(reached)), "an agency reached twice gets one copy"
    assert "OR9990100" not in reached and "OR9990200" in reached and "OR999040Y" in reached


def test_aml_not_taken_by_non_law_enforcement(running):
    c = sender(running)
    alone = c.request("AML.OR9990100.OR999050H.TXTLE ONLY")
    assert alone.cls == "E" and alone.text.startswith(".01. AML NOT TAKEN BY OR999050H")
    mixed = c.request("AML.OR9990100.OR9990200,OR999050H.TXTLE ONLY")
    assert mixed.cls == "R"
    assert "OR999050H .01. AML NOT TAKEN BY OR999050H (NOT A LAW ENFORCEMENT AGENCY)" in mixed.text.split("\n")
    assert "OR9990200 QUEUED - NOT CONNECTED, WILL FORWARD" in mixed.text.split("\n")


def test_unknown_destination_is_01(running):
    reply = sender(running).request("AM.OR9990100.OR1234567.TXTHELLO")
    assert reply.cls == "E" and reply.text.startswith(".01. UNKNOWN DESTINATION OR1234567")
    assert sender(running).request("AM.OR9990100.NOSUCH.TXTHELLO").text.startswith(".01.")


def test_out_of_state_agency_goes_through_nlets(running):
    reply = sender(running).request("AM.OR9990100.WA9990100.TXTHELLO WASHINGTON")
    assert reply.text.split("\n") == ["AM ACCEPTED FOR WA9990100", "WA9990100 SENT THROUGH NLETS"]


def test_remove_status_is_04_and_nothing_queued(home, switch_factory):
    edit_registry(home, agencies={"OR9990200": {"status": "remove"}})
    running = switch_factory()
    reply = sender(running).request(AM)
    assert reply.cls == "E"
    assert reply.text.split("\n")[0] == ".04. DESTINATION OR9990200 ON REMOVE STATUS, MESSAGE NOT QUEUED"
    assert running.call(running.switch.router.delivery.depths) == {}


def test_queue_depth_limit_refuses_clearly(home, switch_factory):
    conf = home / "conf" / "lems.toml"
    conf.write_text(conf.read_text().replace("queue_depth = 5000", "queue_depth = 2"))
    running = switch_factory()
    c = sender(running)
    assert c.request(AM).cls == "R" and c.request(AM).cls == "R"
    refused = c.request(AM)
    assert refused.cls == "E"
    assert refused.text.split("\n")[0] == ".04. QUEUE FULL FOR T0200001, MESSAGE NOT QUEUED"
    assert running.call(running.switch.router.delivery.depths) == {"T0200001": 2}
    d = running.client("T0200001").connect()
    d.receive()
    assert [d.receive().text.split("\n")[-1] for _ in range(2)] == ["PLEASE CALL RECORDS RE CASE ACC-0001"] * 2
    nothing_more(d)


def test_ack_terminal_gets_unacknowledged_frame_again_with_same_osn(home, switch_factory):
    edit_registry(home, terminals={"T0200001": {"ack": True}})
    running = switch_factory()
    sender(running).request(AM)

    d = running.client("T0200001").connect()
    d.ack = False  # this terminal "forgets" to acknowledge
    d.receive()
    first = d.receive()
    assert first.cls == "U" and "PLEASE CALL" in first.text
    d.close()

    again = running.client("T0200001").connect()
    again.ack = False
    banner = again.receive()
    resent = again.receive()
    assert (resent.osn, resent.text, resent.ts) == (first.osn, first.text, first.ts)
    assert banner.osn > first.osn
    ack = again.request(f"ACK.OR9990200.OSN/{first.osn:05d}")
    assert (ack.cls, ack.text) == ("R", f"ACK OSN/{first.osn:05d} ACCEPTED")
    assert again.request(f"ACK.OR9990200.OSN/{first.osn:05d}").text.endswith("NO FRAME AWAITING ACKNOWLEDGEMENT")
    again.close()

    last = running.client("T0200001").connect()
    last.receive()
    nothing_more(last)


def test_ack_terminal_live_delivery_acknowledged_by_client(home, switch_factory):
    edit_registry(home, terminals={"T0200001": {"ack": True}})
    running = switch_factory()
    d = running.signed_on("T0200001", "OR9990200", "OP020001")   # the client acknowledges U and S frames
    c = sender(running)
    assert c.request(AM).text.endswith("OR9990200 DELIVERED")
    wait_for(d, "PLEASE CALL")
    ack = d.reply("ACK")
    assert ack.text.endswith("ACCEPTED")
    assert running.call(running.switch.router.delivery.depths) == {}


def test_ack_for_another_agency_is_21(running):
    reply = sender(running).request("ACK.OR9990200.OSN/00001")
    assert reply.cls == "E" and reply.text.startswith(".21.")


def test_a_frame_outside_any_input_is_queued_for_an_offline_terminal(running):
    assert running.call(running.switch.send_to_terminal, "T0200001", "U", "LOCATE NOTICE TEST", 2) == "queued"
    d = running.client("T0200001").connect()
    d.receive()
    assert d.receive().text == "LOCATE NOTICE TEST"


def test_groups_file_is_checked(tmp_path):
    path = tmp_path / "groups.toml"
    path.write_text('[[group]]\nname = "XY"\nstates = ["OR"]\n')
    with pytest.raises(GroupError, match="3 to 8"):
        load_groups(path)
    path.write_text('[[group]]\nname = "EMPTY"\n')
    with pytest.raises(GroupError, match="no members"):
        load_groups(path)
    path.write_text('[[group]]\nname = "ODD"\nstates = ["OR"]\nbogus = 1\n')
    with pytest.raises(GroupError, match="bogus"):
        load_groups(path)
    assert load_groups(tmp_path / "missing.toml") == {}
