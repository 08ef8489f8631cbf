"""Inputs refused by the framing get their REF back over real TLS (PROTOCOL.md 3, issue 15 item 2).

A terminal that matches replies by REF (the project's own raw client does:
``TerminalClient.reply(ref)``) must get the `.31.` of an oversized frame and the
`.10.` of a frame with a forbidden byte under the REF it sent, at once, on both
framings; the framers' property tests are in tests/test_framing.py.
"""

from __future__ import annotations

import time

import pytest

from lems.store import journal
from lems.wire.framing import LengthFramer, StxFramer
from lems.wire.headers import input_bytes

from test_faults import set_limits

QW_DOE = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"
# Well under the client's 10 s default and the 15 s `lems send` waited before.
PROMPT = 3.0


def _timed_reply(client, ref):
    started = time.monotonic()
    reply = client.reply(ref, timeout=PROMPT)
    return reply, time.monotonic() - started


@pytest.mark.parametrize("listener, framer", [("terminals", StxFramer), ("interfaces", LengthFramer)])
def test_an_oversized_frame_and_a_bad_character_get_their_ref_back(running, listener, framer):
    c = running.signed_on("T0100001", "OR9990100", "OP010001", listener=listener)
    big = input_bytes("BIG-1", "", "AM.OR9990100.OR9990200.TXT" + "X" * 20000)
    if framer is LengthFramer:
        # The length prefix alone in its own TLS record, as a vendor writing it separately sends it.
        wire = framer.encode(big)
        c.send_raw(wire[:5])
        c.send_raw(wire[5:])
    else:
        c.send_raw(framer.encode(big))
    reply, took = _timed_reply(c, "BIG-1")
    assert reply.cls == "E" and reply.text.startswith(".31. FRAME LONGER THAN 16384 BYTES DISCARDED")
    assert took < PROMPT
    c.send_raw(framer.encode(input_bytes("BAD-1", "", "QW.OR9990100.NAM/DOE") + b"\x00"))
    reply, took = _timed_reply(c, "BAD-1")
    assert reply.cls == "E" and reply.text.startswith(".10. INVALID CHARACTER X'00' AT POSITION 39")
    assert "ORIGINAL MESSAGE\nBAD-1" in reply.text
    # A full 10-character REF, and a payload too short for the 18-byte header: REF back too.
    c.send_raw(framer.encode(b"0123456789QW"))
    reply, _ = _timed_reply(c, "0123456789")
    assert reply.text.startswith(".10. INPUT HEADER MUST BE 18 CHARACTERS")
    # The connection's good traffic carries on.
    assert c.request(QW_DOE).cls == "R"
    rows = running.call(lambda: journal.search(running.switch.store.conn, terminal="T0100001"))
    assert {(r.ref, r.outcome) for r in rows if r.kind == "in"} >= {("BIG-1", ".31."), ("BAD-1", ".10.")}


def test_a_ref_that_cannot_be_echoed_and_data_outside_frames_are_answered_blank(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    c.send_raw(StxFramer.encode(b"BAD\xc9REF   " + b" " * 8 + b"HBT"))
    error = c.receive(timeout=PROMPT)
    assert (error.cls, error.ref) == ("E", "") and error.text.startswith(".10. INVALID CHARACTER X'C9' AT POSITION 4")
    c.send_raw(b"noise outside any frame")
    error = c.receive(timeout=PROMPT)
    assert (error.cls, error.ref) == ("E", "") and error.text.startswith(".10. DATA OUTSIDE A FRAME")
    c.send_raw(StxFramer.encode(input_bytes("CUT-1", "", "HBT"))[:-1])  # no ETX: cut by the next STX
    c.send_raw(StxFramer.encode(input_bytes("NEXT-1", "", "HBT")))
    cut = c.reply("CUT-1", timeout=PROMPT)
    assert cut.text.startswith(".10. FRAME NOT TERMINATED BEFORE NEXT STX")
    assert c.reply("NEXT-1", timeout=PROMPT).text == "HBT"


def test_a_framing_error_over_the_input_rate_is_refused_with_its_ref(home, switch_factory, monkeypatch):
    from lems.net.link import TerminalProtocol

    monkeypatch.setattr(TerminalProtocol, "OVER_RATE_PAUSE", 0)
    set_limits(home, inputs_per_second=1.0, input_burst=2)
    running = switch_factory()
    c = running.signed_on("T0100001", "OR9990100", "OP010001")  # the SON took one token
    c.send_raw(StxFramer.encode(input_bytes("H-1", "", "HBT"))
               + StxFramer.encode(input_bytes("BAD-2", "", "HBT") + b"\x00")
               + StxFramer.encode(b"X" * 20000))
    assert c.reply("H-1", timeout=PROMPT).text == "HBT"
    refused = c.reply("BAD-2", timeout=PROMPT)
    assert refused.cls == "E" and refused.text.startswith(".21. TERMINAL T0100001 OVER ITS INPUT RATE")
    over = c.reply("XXXXXXXXXX", timeout=PROMPT)
    assert over.text.startswith(".21. TERMINAL T0100001 OVER ITS INPUT RATE")
