"""Hit confirmation end to end with the FakeClock (PROTOCOL.md 5.4)."""

from __future__ import annotations

import pytest
from test_delivery import nothing_more, wait_for

NIC = "W000000001"  # DOE, JOHN Q, entered by OR9990200 (routes/records/wanted.jsonl)
YQ = ("YQ.OR9990100.OR9990200.*YQCTL00001.TXTRTY/WP.RNO/1.PRI/U.OCA/ANY.NIC/" + NIC +
      ".NAM/DOE, JOHN Q.DOB/19800101.SEX/M.RNA/SGT TEST.RAG/TEST CITY PD.PHO/5555550100")
YR = ("YR.OR9990200.OR9990100.*YQCTL00001.TXTRTY/WP.RNO/{rno}.OCA/ANY.NIC/" + NIC +
      ".CNF/{cnf}.NAM/DOE, JOHN Q.RNA/DEP TEST")


def parties(running):
    requester = running.signed_on("T0100002", "OR9990100", "OP010001")   # mobile: never idles out
    entering = running.signed_on("T0200001", "OR9990200", "OP020001")
    return requester, entering


def open_hits(running):
    return running.call(running.switch.router.hits.open_hits)


def test_urgent_yq_unanswered_then_rno2_then_yr_closes(running, clock):
    requester, entering = parties(running)
    reply = requester.request(YQ)
    assert reply.cls == "R"
    assert reply.text.split("\n") == ["YQ ACCEPTED FOR OR9990200", "*YQCTL00001", f"NIC/{NIC} RNO/1 PRI/U",
                                      "OR9990200 DELIVERED", "RESPONSE DUE WITHIN 10 MINUTES"]
    first = wait_for(entering, "RNO/1")
    assert first.cls == "U"
    assert first.text.split("\n")[:3] == ["YQ.OR9990100.OR9990200", "*YQCTL00001", "TXT"]
    assert first.text.split("\n")[3].startswith(f"RTY/WP.RNO/1.PRI/U.OCA/ANY.NIC/{NIC}.NAM/DOE, JOHN Q")

    clock.advance(9 * 60)
    running.tick()
    nothing_more(requester)
    clock.advance(60)
    running.tick()
    notice = wait_for(requester, "NOT ANSWERED")
    assert notice.cls == "U"
    assert notice.text.split("\n") == ["HIT CONFIRMATION NOT ANSWERED", "*YQCTL00001",
                                       f"NIC/{NIC} RNO/1 PRI/U TO OR9990200 - NO RESPONSE IN 10 MINUTES",
                                       "SWITCH SENT RNO/2 TO OR9990200"]
    second = wait_for(entering, "RNO/2")
    assert "RTY/WP.RNO/2.PRI/U" in second.text
    assert second.text.split("\n")[-1] == "RNO/2 SENT BY THE SWITCH - NO RESPONSE TO RNO/1 IN 10 MINUTES"
    assert [h.rno for h in open_hits(running)] == [2]

    answer = entering.request(YR.format(rno=2, cnf="Y"))
    assert answer.text.split("\n") == ["YR ACCEPTED FOR OR9990100", "*YQCTL00001",
                                       f"NIC/{NIC} CNF/Y - REQUEST CLOSED", "OR9990100 DELIVERED"]
    relayed = wait_for(requester, "CNF/Y")
    assert relayed.text.split("\n")[:3] == ["YR.OR9990200.OR9990100", "*YQCTL00001", "TXT"]
    assert open_hits(running) == []
    clock.advance(3600)
    running.tick()
    nothing_more(requester)


def test_open_request_survives_restart(switch_factory, clock):
    first = switch_factory()
    requester = first.signed_on("T0100002", "OR9990100", "OP010001")
    assert requester.request(YQ).text.split("\n")[3] == "OR9990200 QUEUED - NOT CONNECTED, WILL FORWARD"
    first.stop()

    second = switch_factory()
    [req] = open_hits(second)
    assert (req.nic, req.requester, req.entering, req.priority, req.rno) == (NIC, "OR9990100", "OR9990200", "U", 1)
    clock.advance(600)
    second.tick()
    entering = second.client("T0200001").connect()
    entering.receive()  # banner
    assert "RNO/1" in entering.receive().text and "RNO/2" in entering.receive().text
    back = second.client("T0100002").connect()
    back.receive()
    assert back.receive().text.startswith("HIT CONFIRMATION NOT ANSWERED")


def test_third_expiry_notifies_control_agency_and_late_yr_closes(running, clock):
    requester, entering = parties(running)
    control = running.client("T0000001").connect()
    control.receive()
    requester.request(YQ)
    for rno in (2, 3):
        clock.advance(10 * 60)
        running.tick()
        wait_for(entering, f"RNO/{rno}")
        entering.request("QW.OR9990200.NAM/DOE, JOHN Q.DOB/19800101")  # operator activity: no 30-minute lock
    clock.advance(10 * 60)
    running.tick()
    last = wait_for(requester, "NO RESPONSE TO 3 REQUESTS")
    assert last.text.split("\n")[-1] == "NO RESPONSE TO 3 REQUESTS - CONTROL TERMINAL AGENCY OR9990000 NOTIFIED"
    told = wait_for(control, "UNANSWERED AFTER 3 REQUESTS")
    assert told.text.split("\n") == ["HIT CONFIRMATION UNANSWERED AFTER 3 REQUESTS", "*YQCTL00001",
                                     f"NIC/{NIC} PRI/U REQUESTED BY OR9990100 FROM OR9990200"]
    assert [h.state for h in open_hits(running)] == ["expired"]
    clock.advance(600)
    running.tick()
    nothing_more(entering)

    late = entering.request(YR.format(rno=3, cnf="N"))
    assert f"NIC/{NIC} CNF/N - REQUEST CLOSED AFTER IT EXPIRED" in late.text.split("\n")
    assert "CNF/N" in wait_for(requester, "YR.OR9990200").text
    assert open_hits(running) == []


def test_cnf_p_sets_the_wait(running, clock):
    requester, entering = parties(running)
    requester.request(YQ)
    reply = entering.request(YR.format(rno=1, cnf="P") + ".TIM/15")
    assert f"NIC/{NIC} CNF/P - CONFIRMATION DUE WITHIN 15 MINUTES" in reply.text.split("\n")
    clock.advance(10 * 60)
    running.tick()
    assert [(h.state, h.rno) for h in open_hits(running)] == [("pending", 1)]
    clock.advance(5 * 60)
    running.tick()
    assert "NO RESPONSE IN 15 MINUTES" in wait_for(requester, "NOT ANSWERED").text


def test_routine_wait_is_60_minutes(running, clock):
    requester, _ = parties(running)
    assert requester.request(YQ.replace("PRI/U", "PRI/R")).text.endswith("RESPONSE DUE WITHIN 60 MINUTES")
    clock.advance(59 * 60)
    running.tick()
    assert [h.rno for h in open_hits(running)] == [1]
    clock.advance(60)
    running.tick()
    assert [h.rno for h in open_hits(running)] == [2]


def test_yr_without_request_is_relayed(running):
    requester, entering = parties(running)
    reply = entering.request(YR.format(rno=1, cnf="Y"))
    assert reply.cls == "R" and f"NIC/{NIC} CNF/Y - NO OPEN REQUEST ON FILE" in reply.text
    assert "CNF/Y" in wait_for(requester, "YR.OR9990200").text


@pytest.mark.parametrize("change, code, words", [
    (("NIC/W000000001", "NIC/W000999999"), ".12.", "NIC/W000999999 NOT ON FILE"),
    (("RTY/WP", "RTY/VE"), ".12.", "RTY/VE DOES NOT CONFIRM"),
    (("DOB/19800101", "DOB/19800102"), ".12.", "INVALID FIELD DOB - DOES NOT MATCH"),
    ((".NAM/DOE, JOHN Q", ""), ".13.", "DATA SET FOR RTY/WP NEEDS NAM"),
    (("YQ.OR9990100.OR9990200", "YQ.OR9990100.OR9990000"), ".12.", "ENTERED BY OR9990200, NOT OR9990000"),
])
def test_yq_checked_against_the_record(running, change, code, words):
    requester = running.signed_on("T0100001", "OR9990100", "OP010001")
    reply = requester.request(YQ.replace(*change))
    assert reply.cls == "E" and reply.text.startswith(code) and words in reply.text
    assert open_hits(running) == []
