"""`lems replay` (PROTOCOL.md 7) and the `lems bench` smoke test.

tests/captures/demo-session.jsonl was recorded with `lems serve --capture` on a
fresh `lems init` home: two terminals (T0100001 with OP010001, T0200001 with
OP020001); a QW before sign-on (.20.), sign-ons, QW hit and no-hit, QV by plate
and by VIN, QG, HBT, a .12. and a .13., sign-offs.  Entries (EW/MW/CW) and RQ
are left out because this switch has no route for them yet (.01.); the NIC
substitution an entry needs is tested with a scripted switch below.
demo-session-wrong.jsonl is the same capture with one reply line edited
(VCO/BLU -> VCO/RED in A-0004) and one code changed (.12. -> .13. in A-0007).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, reactor

from lems.tools import replay
from lems.tools.latency import percentiles
from lems.tools.target import Target, Wire
from lems.wire import capture as capture_mod
from lems.wire import framing
from lems.wire.headers import Output

from lems.base import credentials
from lems.base.conf import Settings
from lems.tools import audit as audit_tool

from conftest import PASSWORD, in_reactor

CAPTURES = Path(__file__).parent / "captures"
GOOD = CAPTURES / "demo-session.jsonl"
WRONG = CAPTURES / "demo-session-wrong.jsonl"


def rec(cls: str, text: str, ref: str = "R1") -> dict[str, Any]:
    return {"t": 0.0, "terminal": "T0100001", "dir": "out", "ref": ref, "cls": cls, "text": text}


def live(cls: str, text: str, ref: str = "R1") -> Output:
    return Output(1, ref, cls, "2026010112000000", text)


# -- comparing replies ------------------------------------------------------------------------


def test_same_reply_matches():
    assert replay.compare(rec("R", "HBT"), live("R", "HBT"), replay.NicMap()) is None


def test_different_class_code_and_line_are_named():
    nics = replay.NicMap()
    diff = replay.compare(rec("R", "HBT"), live("E", ".20. SIGN-ON REQUIRED"), nics)
    assert diff.kind == "different class" and "class R recorded, E live" in diff.reason
    diff = replay.compare(rec("E", ".12. INVALID FIELD DOB"), live("E", ".13. MANDATORY FIELD MISSING"), nics)
    assert diff.kind == "different code" and "code .12. recorded, .13. live" in diff.reason
    diff = replay.compare(rec("R", "MKE/STOLEN GUN\nCAL/9MM"), live("R", "MKE/STOLEN GUN\nCAL/45"), nics)
    assert diff.kind == "different line" and diff.reason == "line 2 differs: recorded 'CAL/9MM', live 'CAL/45'"
    diff = replay.compare(rec("R", "A\nB"), live("R", "A\nB\nC"), nics)
    assert diff.kind == "different line" and "line 3 only live: 'C'" in diff.reason


def test_signon_warnings_and_nlets_header_times_may_differ():
    nics = replay.NicMap()
    assert replay.compare(
        rec("R", "SIGN-ON ACCEPTED OP010001 OR9990100 TERMINAL T0100001\nCERTIFICATION EXPIRES 20261201"),
        live("R", "SIGN-ON ACCEPTED OP010001 OR9990100 TERMINAL T0100001"), nics) is None
    recorded = "RR.OR0000000\n1012 20260101 00012\n1012 20260101 00044 OR9990100\nTXT\nLIC/TEST123"
    now = "RR.OR0000000\n1730 20261122 00001\n1730 20261122 00002 OR9990100\nTXT\nLIC/TEST123"
    assert replay.compare(rec("R", recorded), live("R", now), nics) is None
    wrong_dest = now.replace("00002 OR9990100", "00002 OR9990200")
    assert replay.compare(rec("R", recorded), live("R", wrong_dest), nics).kind == "different line"


def test_nics_may_differ_but_consistently():
    nics = replay.NicMap()
    entry = "EW.OR9990100.NAM/TESTER, ACCEPT A.OCA/ACC-0001"
    assert replay.compare(rec("R", "ENTERED NIC/W000000005 OCA/ACC-0001\nNIC/W000000005 DTE/20260101"),
                          live("R", "ENTERED NIC/W000000042 OCA/ACC-0001\nNIC/W000000042 DTE/20261122"),
                          nics, entry) is None
    # Later inputs that carry the recorded NIC are sent with the live one ...
    assert nics.substitute("MW.OR9990100.NIC/W000000005.HGT/511") == "MW.OR9990100.NIC/W000000042.HGT/511"
    # ... and a later reply must show the same pair.
    diff = replay.compare(rec("R", "MODIFY NIC/W000000005"), live("R", "MODIFY NIC/W000000043"), nics)
    assert diff.kind == "different NIC" and "W000000042" in diff.reason
    # A demo record's entry date is data, not something that changes.
    diff = replay.compare(rec("R", "NIC/W000000001 DTE/20250314"), live("R", "NIC/W000000001 DTE/20250315"), nics)
    assert diff.kind == "different line"


class ScriptedWire:
    """Stands in for a terminal's connection to a switch that answers with ``answer``."""

    def __init__(self, terminal: str, on_frame, answer) -> None:
        self.terminal, self.on_frame, self.answer, self.open = terminal, on_frame, answer, True
        self.sent: list[str] = []

    def send(self, ref: str, text: str, opr: str = "") -> None:
        self.sent.append(text)
        cls, reply = self.answer(text)
        reactor.callLater(0.001, self.on_frame, Output(len(self.sent), ref, cls, "2026112200000000", reply))

    def close(self) -> None:
        self.open = False


class ScriptedTarget:
    def __init__(self, answer) -> None:
        self.answer, self.wires = answer, {}

    def connect(self, reactor_: Any, terminal: str, on_frame, on_lost=None, timeout: float = 10.0, on_bad=None):
        self.wires[terminal] = ScriptedWire(terminal, on_frame, self.answer)
        return defer.succeed(self.wires[terminal])


def test_entry_then_modify_uses_the_nic_the_switch_gave_out():
    frames = [
        {"t": 0.0, "terminal": "T0100001", "dir": "in", "ref": "E1", "cls": None, "text": "EW.OR9990100.OCA/X1"},
        {"t": 0.1, "terminal": "T0100001", "dir": "out", "ref": "E1", "cls": "R", "text": "ENTERED NIC/W000000005"},
        {"t": 0.2, "terminal": "T0100001", "dir": "in", "ref": "M1", "cls": None,
         "text": "MW.OR9990100.NIC/W000000005.HGT/511"},
        {"t": 0.3, "terminal": "T0100001", "dir": "out", "ref": "M1", "cls": "R", "text": "MODIFIED NIC/W000000005"},
    ]

    def answer(text: str):
        if text.startswith("EW."):
            return "R", "ENTERED NIC/W000000077"
        return "R", "MODIFIED " + text.split(".")[2]

    target = ScriptedTarget(answer)
    report = in_reactor(replay.run_in_reactor, reactor, frames, target, speed=None, settle=0.05)
    assert report["mismatched"] == 0, [m["reason"] for m in report["mismatches"]]
    assert target.wires["T0100001"].sent[1] == "MW.OR9990100.NIC/W000000077.HGT/511"


def test_missing_and_unexpected_replies_are_reported():
    frames = [
        {"t": 0.0, "terminal": "T0100001", "dir": "in", "ref": "A", "cls": None, "text": "HBT"},
        {"t": 0.0, "terminal": "T0100001", "dir": "out", "ref": "A", "cls": "R", "text": "HBT"},
        {"t": 0.1, "terminal": "T0100001", "dir": "in", "ref": "B", "cls": None, "text": "QUIET"},
        {"t": 0.1, "terminal": "T0100001", "dir": "out", "ref": "", "cls": "U", "text": "NOTICE"},
    ]
    target = ScriptedTarget(lambda text: ("R", text))

    class Silent(ScriptedWire):
        def send(self, ref, text, opr=""):
            if text != "HBT":
                super().send(ref, text, opr)

    target.connect = lambda r, t, on_frame, on_lost=None, timeout=10.0, on_bad=None: defer.succeed(
        target.wires.setdefault(t, Silent(t, on_frame, target.answer)))
    report = in_reactor(replay.run_in_reactor, reactor, frames, target, speed=None, timeout=0.3, settle=0.1)
    kinds = sorted(m["kind"] for m in report["mismatches"])
    assert kinds == ["missing reply", "missing unsolicited", "unexpected reply"]


BANNER = "LEMS EMULATOR - TEST\nSIGN ON: SON.<ORI>.OPR/<OPERATOR>.PWD/<PASSWORD>"


def test_life_cycle_frames_of_an_unmarked_capture_are_not_compared():
    """A capture from before the mark (or a journal export), taken through a reconnection and a
    shutdown: its banners, the replaced and shutdown notices are not expected; a live banner is not
    a surprise; everything else still is compared."""
    def out(ref, cls, text, terminal="T0100001"):
        return {"t": 0.0, "terminal": terminal, "dir": "out", "ref": ref, "cls": cls, "text": text}

    frames = [
        out("", "S", BANNER),
        {"t": 0.0, "terminal": "T0100001", "dir": "in", "ref": "A", "cls": None, "text": "HBT"},
        out("A", "R", "HBT"),
        out("", "S", "SESSION REPLACED BY A NEW CONNECTION FROM THIS TERMINAL"),
        out("", "S", BANNER),
        out("", "S", "SESSION LOCKED AFTER 30 MINUTES WITHOUT ACTIVITY - SIGN ON AGAIN"),
        out("", "S", "SM.OR9990000\nTXT\nSTATUS"),  # traffic: compared
        out("", "S", "SWITCH SHUTTING DOWN"),
    ]

    class Bannered(ScriptedTarget):
        def connect(self, reactor_, terminal, on_frame, on_lost=None, timeout=10.0, on_bad=None):
            d = super().connect(reactor_, terminal, on_frame, on_lost, timeout, on_bad)
            on_frame(Output(1, "", "S", "2026112200000000", BANNER + "\nA LINE ADDED SINCE"))
            reactor.callLater(0.01, on_frame, Output(3, "", "S", "2026112200000000", "SM.OR9990000\nTXT\nSTATUS"))
            return d

    report = in_reactor(replay.run_in_reactor, reactor, frames, Bannered(lambda text: ("R", text)), speed=None,
                        settle=0.2)
    assert report["mismatched"] == 0, [m["reason"] for m in report["mismatches"]]
    assert report["life_cycle"] == {"recorded": 5, "live": 1}
    assert report["compared"] == 2  # the HBT reply and the SM


def test_the_life_mark_decides_over_the_rule():
    frames = [
        {"t": 0.0, "terminal": "T0100001", "dir": "out", "ref": "", "cls": "S", "text": "NOTICE", "life": True},
        {"t": 0.0, "terminal": "T0100001", "dir": "out", "ref": "", "cls": "S", "text": "SWITCH SHUTTING DOWN",
         "life": False},
    ]
    report = in_reactor(replay.run_in_reactor, reactor, frames, ScriptedTarget(lambda text: ("R", text)),
                        speed=None, settle=0.05)
    assert report["life_cycle"]["recorded"] == 1
    assert [m["kind"] for m in report["mismatches"]] == ["missing unsolicited"]


def test_a_frame_that_is_not_an_output_header_is_a_mismatch_of_its_own():
    frames = [
        {"t": 0.0, "terminal": "T0100001", "dir": "in", "ref": "A", "cls": None, "text": "HBT"},
        {"t": 0.0, "terminal": "T0100001", "dir": "out", "ref": "A", "cls": "R", "text": "HBT"},
    ]

    class Garbled(ScriptedWire):
        def send(self, ref, text, opr=""):
            self.sent.append(text)
            self.on_bad(b"00000" + ref.encode().ljust(10) + b"R" + b"0" * 16 + b"HBT", "OSN b'00000' is not 5 digits")
            self.on_frame(Output(1, ref, "R", "2026112200000000", "HBT"))

    target = ScriptedTarget(lambda text: ("R", text))

    def connect(r, t, on_frame, on_lost=None, timeout=10.0, on_bad=None):
        wire = target.wires[t] = Garbled(t, on_frame, target.answer)
        wire.on_bad = on_bad
        return defer.succeed(wire)

    target.connect = connect
    report = in_reactor(replay.run_in_reactor, reactor, frames, target, speed=None, settle=0.05)
    assert [(m["kind"], m["reason"]) for m in report["mismatches"]] == [("bad frame", "OSN b'00000' is not 5 digits")]
    assert report["matched"] == 1


def test_wire_reads_frames_through_the_headers_module():
    got, bad = [], []
    wire = Wire("stx", got.append, on_bad=lambda payload, reason: bad.append(reason))
    good = b"00007REF-1     R2026010112000000HBT"
    wire.dataReceived(framing.StxFramer.encode(good) + framing.StxFramer.encode(b"00001SHORT"))
    assert got == [Output(7, "REF-1", "R", "2026010112000000", "HBT")]
    assert bad == ["output payload of 10 bytes is shorter than the 32-byte header"]


def test_percentiles_are_inclusive_quantiles():
    """One function for bench and replay: statistics.quantiles(method="inclusive")."""
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}
    assert percentiles([4.0]) == {"p50": 4.0, "p95": 4.0, "p99": 4.0}
    assert percentiles(range(1, 102)) == {"p50": 51.0, "p95": 96.0, "p99": 100.0}
    assert percentiles([3.0, 1.0, 2.0, 4.0]) == {"p50": 2.5, "p95": 3.85, "p99": 3.97}
    # The slowest sample bounds every percentile (no extrapolation past it).
    assert max(v for v in percentiles([1.0, 1000.0]).values()) < 1000.0


# -- against a real switch -----------------------------------------------------------------------


def _target(running) -> Target:
    return Target.from_home(running.home, "127.0.0.1", running.port)


def test_good_capture_replays_clean(running):
    frames = list(capture_mod.read(GOOD))
    report = in_reactor(replay.run_in_reactor, reactor, frames, _target(running), speed=None, settle=0.2,
                        credentials=replay.Credentials(default=PASSWORD))
    assert report["mismatched"] == 0, [m["reason"] for m in report["mismatches"]]
    assert report["frames"] == sum(1 for f in frames if f["dir"] == "in")
    # Every out frame but the two banners (life-cycle frames, PROTOCOL.md 7: recorded, not compared);
    # this capture predates the "life" mark, so replay tells them by the rule.
    assert not any("life" in f for f in frames)
    assert report["compared"] == sum(1 for f in frames if f["dir"] == "out") - 2
    assert report["life_cycle"] == {"recorded": 2, "live": 2}
    assert report["latency_ms"]["p99"] is not None


def test_wrong_capture_names_the_edited_line_and_the_changed_code(running):
    frames = list(capture_mod.read(WRONG))
    report = in_reactor(replay.run_in_reactor, reactor, frames, _target(running), speed=None, settle=0.2,
                        credentials=replay.Credentials(default=PASSWORD))
    found = {(m["ref"], m["kind"]): m["reason"] for m in report["mismatches"]}
    assert set(found) == {("A-0004", "different line"), ("A-0007", "different code")}
    assert "recorded 'VCO/RED', live 'VCO/BLU'" in found[("A-0004", "different line")]
    assert "code .13. recorded, .12. live" in found[("A-0007", "different code")]


def test_cli_exit_status_and_report(running, tmp_path):
    base = [sys.executable, "-m", "lems", "replay"]
    where = ["--home", str(running.home), "--host", "127.0.0.1", "--port", str(running.port)]
    good = subprocess.run(base + [str(GOOD), *where, "--speed", "20", "--password", PASSWORD],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "0 mismatched" in good.stdout and "latency ms p50" in good.stdout
    assert "2 recorded life-cycle frames not compared" in good.stdout
    report_path = tmp_path / "report.json"
    credentials = tmp_path / "credentials"
    credentials.write_text(f"# operator password\nOP010001 {PASSWORD}\nop020001 {PASSWORD}\n")
    wrong = subprocess.run(base + [str(WRONG), *where, "--max", "--report", str(report_path),
                                   "--credentials", str(credentials)], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "A-0007: different code" in wrong.stdout and "A-0004: different line" in wrong.stdout
    report = json.loads(report_path.read_text())
    assert report["mismatched"] == 2 and {m["ref"] for m in report["mismatches"]} == {"A-0004", "A-0007"}
    assert PASSWORD not in report_path.read_text() and PASSWORD not in wrong.stdout + wrong.stderr
    # No password given: refused before anything is sent, naming who needs what.
    none = subprocess.run(base + [str(GOOD), *where, "--max"], capture_output=True, text=True, timeout=60)
    assert none.returncode == 2
    assert "OP010001 needs a password; OP020001 needs a password" in none.stderr and "--password" in none.stderr


def test_a_capture_taken_through_a_shutdown_replays_clean(switch_factory, tmp_path):
    """Issue 15 item 5: the SWITCH SHUTTING DOWN notice is recorded, marked, and not expected."""
    path = tmp_path / "through-shutdown.jsonl"
    first = switch_factory(capture=path)
    c = first.signed_on("T0100001", "OR9990100", "OP010001")
    assert c.request("QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101").cls == "R"
    again = first.client("T0100001").connect()  # replaces the first session
    again.banner()
    assert again.sign_on("OR9990100", "OP010001", PASSWORD).cls == "R"
    first.call(first.service.stop)
    first.service = None
    frames = list(capture_mod.read(path))
    life = [(f["cls"], f["text"].split("\n")[0]) for f in frames if f.get("life")]
    assert life == [("S", frames[0]["text"].split("\n")[0]),
                    ("S", "SESSION REPLACED BY A NEW CONNECTION FROM THIS TERMINAL"),
                    ("S", frames[0]["text"].split("\n")[0]),
                    ("S", "SWITCH SHUTTING DOWN")]
    assert not any("life" in f for f in frames if f["cls"] in ("R", "E") or f["dir"] == "in")
    second = switch_factory()
    report = in_reactor(replay.run_in_reactor, reactor, frames, _target(second), speed=None, settle=0.2,
                        credentials=replay.Credentials(default=PASSWORD))
    assert report["mismatched"] == 0, [m["reason"] for m in report["mismatches"]]
    assert report["life_cycle"] == {"recorded": 4, "live": 1}


# -- sign-on secrets put back --------------------------------------------------------------------


def test_credentials_fill_masked_sign_ons_only(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("# who, password, TOTP secret\nOP010001 Pass#One1\nop010003 Pass#Three3 JBSWY3DPEHPK3PXP\n\n")
    creds = replay.Credentials.load(str(path), default="Every#One1")
    assert creds.fill("SON.OR9990100.OPR/OP010001.PWD/*") == "SON.OR9990100.OPR/OP010001.PWD/Pass#One1"
    assert creds.fill("son.or9990100.pwd/*.opr/op020001") == "son.or9990100.PWD/Every#One1.opr/op020001"
    at = 1_800_000_000.0
    code = credentials.totp_now("JBSWY3DPEHPK3PXP", at)
    assert creds.fill("SON.OR9990100.OPR/OP010003.PWD/*.OTP/*", now=lambda: at) == \
        f"SON.OR9990100.OPR/OP010003.PWD/Pass#Three3.OTP/{code}"
    # A sign-on recorded in clear (before masking) and other keys go as recorded.
    for text in ("SON.OR9990100.OPR/OP010001.PWD/Recorded#1", "AM.OR9990100.OR9990200.TXT PWD/*"):
        assert creds.fill(text) == text
    assert creds.missing(["SON.OR9990100.OPR/OP010001.PWD/*.OTP/*", "SON.OR9990100.OPR/OP010003.PWD/*.OTP/*"]) \
        == ["OP010001 needs a TOTP secret"]
    assert replay.Credentials().missing(["SON.OR9990100.OPR/OP010001.PWD/*"]) == ["OP010001 needs a password"]


@pytest.mark.parametrize("line", ["OP010001", "OP010001 a b c", "OP010003 Pass#3 not-base32!"])
def test_a_bad_credentials_line_is_named(tmp_path, line):
    path = tmp_path / "credentials"
    path.write_text(f"OP010002 Fine#Pass2\n{line}\n")
    with pytest.raises(ValueError, match=f"{path}:2:"):
        replay.Credentials.load(str(path))


def test_an_exported_journal_replays_with_the_password_given(running, tmp_path):
    """The round trip: traffic journaled masked, exported, replayed with --credentials' password."""
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert c.request("QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101").cls == "R"
    c.close()
    out = tmp_path / "export.jsonl"
    store = Settings.load(running.home).store_path
    assert audit_tool.main(["export", "--out", str(out)], store) == 0
    frames = list(capture_mod.read(out))
    assert PASSWORD not in out.read_text()
    assert any(f["text"] == "SON.OR9990100.OPR/OP010001.PWD/*" for f in frames)
    report = in_reactor(replay.run_in_reactor, reactor, frames, _target(running), speed=None, settle=0.2,
                        credentials=replay.Credentials({"OP010001": PASSWORD}))
    assert report["mismatched"] == 0, [m["reason"] for m in report["mismatches"]]


def test_bench_smoke():
    done = subprocess.run([sys.executable, "-m", "lems", "bench", "--terminals", "2", "--seconds", "2"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio switch/echo: throughput" in done.stdout
