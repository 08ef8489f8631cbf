"""Traffic capture (PROTOCOL.md 7): the format, the per-turn flush, and `lems serve --capture` end to end."""

from __future__ import annotations

import io
import json

import pytest

from lems.wire import capture as capture_mod
from lems.wire import framing
from lems.wire.headers import output_bytes

from conftest import PASSWORD


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_are_written_only_on_flush_in_the_section_7_format():
    out, clock = io.StringIO(), Ticks()
    cap = capture_mod.Capture(out, clock)
    clock.now = 101.25
    cap.inbound("T0100001", [framing.Frame(b"REF-1     " + b" " * 8 + b"HBT"),
                             framing.FrameError(".10.", "DATA OUTSIDE A FRAME DISCARDED", b"x")])
    cap.outbound("T0100001", output_bytes(7, "REF-1", "R", "2026010112000000", "HBT"))
    assert out.getvalue() == ""  # held until the turn ends
    cap.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {"t": 1.25, "terminal": "T0100001", "dir": "in", "ref": "REF-1", "cls": None, "text": "HBT"},
        {"t": 1.25, "terminal": "T0100001", "dir": "out", "ref": "REF-1", "cls": "R", "text": "HBT"},
    ]
    assert cap.count == 2


def test_a_payload_too_short_for_a_header_is_recorded_with_a_blank_ref():
    out = io.StringIO()
    cap = capture_mod.Capture(out, Ticks())
    cap.inbound("T0100001", [framing.Frame(b"SHORT")])
    cap.flush()
    assert json.loads(out.getvalue())["ref"] == "" and json.loads(out.getvalue())["text"] == "SHORT"


@pytest.mark.parametrize("line, reason", [
    ("{", "not JSON"),
    ("[]", "not a JSON object"),
    ('{"t": 0, "terminal": "T", "dir": "in", "ref": ""}', "missing cls, text"),
    ('{"t": -1, "terminal": "T", "dir": "in", "ref": "", "cls": null, "text": ""}', "not negative"),
    ('{"t": 0, "terminal": "T", "dir": "up", "ref": "", "cls": null, "text": ""}', "dir must be"),
    ('{"t": 0, "terminal": "T", "dir": "out", "ref": "", "cls": "X", "text": ""}', "cls must be one of"),
    ('{"t": 0, "terminal": "T", "dir": "in", "ref": "ELEVENCHARS", "cls": null, "text": ""}', "longer than 10"),
])
def test_bad_capture_lines_are_named(line, reason):
    with pytest.raises(capture_mod.CaptureError, match=reason) as info:
        capture_mod.parse_line(line, "c.jsonl", 7)
    assert "c.jsonl:7:" in str(info.value)


def test_serve_capture_records_both_directions_per_terminal(switch_factory, tmp_path):
    path = tmp_path / "capture.jsonl"
    running = switch_factory(capture=path)
    a = running.signed_on("T0100001", "OR9990100", "OP010001")
    hbt = a.reply(a.send("HBT", ref="CAP-1"))
    assert hbt.cls == "R"
    # Flushed at the end of the turn that wrote the reply, not at shutdown.
    frames = list(capture_mod.read(path))
    assert [(f["dir"], f["ref"], f["cls"]) for f in frames][-2:] == [("in", "CAP-1", None), ("out", "CAP-1", "R")]
    b = running.client("T0200001").connect()
    b.banner()
    refused = b.request("QW.OR9990200.NAM/DOE, JOHN Q.DOB/19800101")
    assert refused.cls == "E"
    running.stop()
    frames = list(capture_mod.read(path))
    by_terminal = {t: [f for f in frames if f["terminal"] == t] for t in ("T0100001", "T0200001")}
    first = by_terminal["T0100001"]
    assert (first[0]["dir"], first[0]["cls"], first[0]["ref"]) == ("out", "S", "")
    assert "MONITORED AND RECORDED" in first[0]["text"] and first[0]["life"] is True
    signon = first[1]
    # The password is never in a capture (PROTOCOL.md 4 item 4); replay puts it back.
    assert signon["dir"] == "in" and signon["text"] == "SON.OR9990100.OPR/OP010001.PWD/*"
    assert PASSWORD not in path.read_text()
    assert first[2]["dir"] == "out" and first[2]["ref"] == signon["ref"] and first[2]["text"].startswith(
        "SIGN-ON ACCEPTED")
    assert [f["cls"] for f in by_terminal["T0200001"] if f["dir"] == "out"][:2] == ["S", "E"]
    assert by_terminal["T0200001"][2]["text"].startswith(".20.")
    times = [f["t"] for f in frames]
    assert times == sorted(times) and times[0] >= 0


def test_life_cycle_frames_are_marked_and_traffic_is_not():
    """PROTOCOL.md 7: the switch's frames about its own life are recorded with "life": true."""
    out = io.StringIO()
    cap = capture_mod.Capture(out, Ticks())
    ts = "2026010112000000"
    banner = "LEMS EMULATOR - TEST\nSIGN ON: SON.<ORI>.OPR/<OPERATOR>.PWD/<PASSWORD>"
    sent = [
        ("T0100001", 1, "", "S", banner),  # first frame to the terminal: the banner
        ("T0200001", 1, "", "E", ".21. TERMINAL T0200001 IS REVOKED"),  # refused, no banner
        ("T0200001", 2, "", "S", "LEMS EMULATOR - INTERFACE BANNER"),  # not its first frame, text unseen
        ("T0100001", 2, "R1", "R", "HBT"),
        ("T0100001", 3, "", "S", "SM.OR9990000\nTXT\nSWITCH SHUTTING DOWN AT NOON"),  # SM: traffic
        ("T0100001", 4, "R2", "S", ".02. DESTINATION OUT OF SERVICE, MESSAGE QUEUED, WILL FORWARD - OR9990200"),
        ("T0100001", 5, "", "S", "SESSION REPLACED BY A NEW CONNECTION FROM THIS TERMINAL"),
        ("T0100001", 6, "", "S", banner),  # a reconnection's banner
        ("T0100001", 7, "", "S", "SESSION LOCKED AFTER 30 MINUTES WITHOUT ACTIVITY - SIGN ON AGAIN"),
        ("T0100001", 8, "", "S", "DISCONNECTED AFTER 0.5 MINUTES WITHOUT ACTIVITY"),
        ("T0100001", 9, "", "S", "TERMINAL T0100001 REVOKED BY THE CONTROL TERMINAL AGENCY"),  # an admin's act
        ("T0100001", 10, "", "S", "SWITCH SHUTTING DOWN"),
    ]
    for terminal, osn, ref, cls, text in sent:
        cap.outbound(terminal, output_bytes(osn, ref, cls, ts, text))
    cap.flush()
    frames = [capture_mod.parse_line(line) for line in out.getvalue().splitlines()]
    assert [f.get("life", False) for f in frames] == [
        True, False, False, False, False, False, True, True, True, True, False, True]
    assert all(f["life"] is True for f in frames if "life" in f)  # the key is written only when true


def test_the_life_mark_is_checked_when_read():
    base = '{"t": 0, "terminal": "T", "dir": "%s", "ref": "", "cls": %s, "text": "", "life": %s}'
    assert capture_mod.parse_line(base % ("out", '"S"', "true"))["life"] is True
    for direction, cls, life in (("out", '"S"', '"yes"'), ("in", "null", "true")):
        with pytest.raises(capture_mod.CaptureError, match="life must be true or false, on an out frame"):
            capture_mod.parse_line(base % (direction, cls, life))
