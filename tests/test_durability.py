"""Crash durability: SIGKILL the switch mid-load, restart it, and lose nothing acknowledged.

The switch runs as its own process (``lems serve``) on a copy of the demo home.
Three terminals load it at once: one enters wanted persons, one sends AMs to an
agency with no terminal connected (each is queued, and the sender is told so),
and one has an urgent hit confirmation open.  The process is killed with
SIGKILL while they are sending.  Then:

* ``lems audit verify`` passes on the journal the killed process left, its
  signed head file included (written before each COMMIT, so a kill on either
  side of one leaves the database in a state the file names);
* the switch restarts in this process on the same home, with a FakeClock set
  to the wall clock, and every entry whose sender got its ``NIC/`` reply is
  found by an inquiry, NICs are never given twice, and a new entry gets a
  NIC above every one given before the crash;
* when the offline agency signs on, every AM whose sender got the queued
  acknowledgement arrives, and no AM arrives twice;
* the open hit confirmation's timer still runs: ten minutes after it was
  sent, the requester gets the notice and the switch sends RNO/2.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import PASSWORD, Running, serve_process
from test_delivery import wait_for

from lems.tools.client import ReplyTimeout, TerminalClient
from lems.base.clock import UTC, FakeClock
from lems.base.registry import Registry

NIC = "W000000001"  # DOE, JOHN Q, entered by OR9990200 (routes/records/wanted.jsonl)
YQ = ("YQ.OR9990100.OR9990200.*CRASHYQ001.TXTRTY/WP.RNO/1.PRI/U.OCA/ANY.NIC/" + NIC +
      ".NAM/DOE, JOHN Q.DOB/19800101.SEX/M.RNA/SGT TEST.RAG/TEST CITY PD.PHO/5555550100")


def letters(i: int) -> str:
    """A name part from a number: names take letters, not digits."""
    out = ""
    for _ in range(4):
        i, r = divmod(i, 26)
        out += chr(ord("A") + r)
    return out


def entry(i: int) -> str:
    return (f"EW.OR9990100.NAM/CRASHTEST, {letters(i)}.SEX/M.RAC/W.DOB/19700101.HGT/510.WGT/170.EYE/BRO."
            f"HAI/BRO.OFF/2399.DOW/20260101.OCA/CRASH-{i}.MIS/DURABILITY TEST")


def am(i: int) -> str:
    return f"AM.OR9990000.OR9990200.*CR{i:08d}.TXTCRASH TEST MESSAGE {i}"


def terminal(home, port: int, terminal_id: str, ori: str, operator: str) -> TerminalClient:
    pki = home / "var" / "pki"
    registry = Registry.load(home / "terminals")
    c = TerminalClient("127.0.0.1", port, pki / "ca.crt", pki / "terminals" / f"{terminal_id}.crt",
                       pki / "terminals" / f"{terminal_id}.key", "stx", timeout=10,
                       ack=registry.terminals[terminal_id].ack).connect()
    c.banner()
    reply = c.sign_on(ori, operator, PASSWORD)
    assert reply.text.startswith("SIGN-ON ACCEPTED"), reply
    return c


class Load(threading.Thread):
    """Sends ``make(i)`` for i = 0, 1, ... until the link dies; keeps the replies it got."""

    def __init__(self, client: TerminalClient, make) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.make = make
        self.replies: dict[int, str] = {}
        self.sent = 0

    def run(self) -> None:
        i = 0
        while True:
            try:
                self.sent = i + 1
                reply = self.client.request(self.make(i), timeout=10)
            except Exception:  # the switch was killed: the link is gone
                return
            self.replies[i] = reply.cls + "\n" + reply.text
            i += 1


@pytest.fixture
def killed(home):
    """Load the switch process, SIGKILL it mid-load; yields what the terminals were told."""
    proc, port = serve_process(home)
    try:
        requester = terminal(home, port, "T0100002", "OR9990100", "OP010001")
        yq = requester.request(YQ)
        assert yq.cls == "R" and "RESPONSE DUE WITHIN 10 MINUTES" in yq.text, yq
        yq_sent = dt.datetime.now(UTC)
        enterer = Load(terminal(home, port, "T0100001", "OR9990100", "OP010001"), entry)
        sender = Load(terminal(home, port, "T0000001", "OR9990000", "OP000001"), am)
        enterer.start()
        sender.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (len(enterer.replies) < 40 or len(sender.replies) < 40):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # mid-load: both terminals have frames in flight
        proc.wait(timeout=10)
        enterer.join(15)
        sender.join(15)
        yield enterer, sender, yq_sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_mid_load_loses_nothing_acknowledged(home, killed):
    enterer, sender, yq_sent = killed
    assert len(enterer.replies) >= 40 and len(sender.replies) >= 40
    nics = {}
    for i, text in enterer.replies.items():
        assert text.startswith("R\n"), text
        nics[i] = re.search(r"NIC/(W\d{9})", text).group(1)
    assert len(set(nics.values())) == len(nics), "a NIC was given twice"
    queued = {i for i, text in sender.replies.items() if "QUEUED - NOT CONNECTED" in text}
    assert queued == set(sender.replies), "every AM to the offline agency is queued"

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    verify = subprocess.run([sys.executable, "-m", "lems", "audit", "--home", str(home), "verify"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # and the signed head file the killed process left was compared, not skipped (SECURITY.md)
    assert "signed head file " in verify.stdout and ": matches (written " in verify.stdout, verify.stdout

    clock = FakeClock(current=dt.datetime.now(UTC))
    restarted = Running(home, clock)
    try:
        q = restarted.signed_on("T0100001", "OR9990100", "OP010001")
        for i, nic in nics.items():
            reply = q.request(f"QW.OR9990100.NAM/CRASHTEST, {letters(i)}.DOB/19700101")
            assert f"NIC/{nic}" in reply.text, (i, nic, reply.text)
        after = q.request(entry(10_000))
        new_nic = re.search(r"NIC/(W\d{9})", after.text).group(1)
        assert new_nic > max(nics.values()), "NICs are never reused, also across a crash"

        # Every acknowledged AM arrives once; an AM sent but not acknowledged at most once.
        d = restarted.signed_on("T0200001", "OR9990200", "OP020001")
        got = collections.Counter()
        frames = list(d.unsolicited)  # what arrived while the operator was signing on
        d.unsolicited.clear()
        while True:
            try:
                frames.append(d.receive(1.0))
            except ReplyTimeout:
                break
        for frame in frames:
            m = re.search(r"CRASH TEST MESSAGE (\d+)", frame.text)
            if m:
                got[int(m.group(1))] += 1
        duplicated = {i: n for i, n in got.items() if n > 1}
        assert not duplicated, f"delivered more than once: {duplicated}"
        missing = queued - set(got)
        assert not missing, f"acknowledged AMs never delivered: {sorted(missing)}"
        assert set(got) <= set(range(sender.sent)), "only AMs that were sent"

        # The open hit confirmation survived: its timer fires ten minutes after it was sent.
        requester = restarted.signed_on("T0100002", "OR9990100", "OP010001")
        assert [h.nic for h in restarted.call(restarted.switch.router.hits.open_hits)] == [NIC]
        clock.current = yq_sent + dt.timedelta(minutes=10, seconds=1)
        restarted.tick()
        notice = wait_for(requester, "NOT ANSWERED")
        assert "SWITCH SENT RNO/2 TO OR9990200" in notice.text
        assert "RNO/2" in wait_for(d, "RNO/2").text
    finally:
        restarted.stop()
    verify = subprocess.run([sys.executable, "-m", "lems", "audit", "--home", str(home), "verify"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_verify_while_the_switch_writes_and_after_a_kill(home, capsys):
    """``lems audit verify`` run against a loaded switch never mistakes its commits for tampering
    (it reads the head file before and after its snapshot), and the store it is killed with verifies."""
    from lems.tools import audit

    proc, port = serve_process(home)
    store = home / "var" / "lems.sqlite"
    try:
        loads = [Load(terminal(home, port, "T0100001", "OR9990100", "OP010001"), entry),
                 Load(terminal(home, port, "T0000001", "OR9990000", "OP000001"), am)]
        for load in loads:
            load.start()
        outcomes = []
        while len(outcomes) < 8 or min(len(load.replies) for load in loads) < 20:
            outcomes.append((audit.main(["verify"], store), capsys.readouterr().out))
            if len(outcomes) > 200:
                break
        assert all(code == 0 for code, _ in outcomes), [out for code, out in outcomes if code]
        assert min(len(load.replies) for load in loads) >= 20, "the load ran while verify did"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        for load in loads:
            load.join(15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert audit.main(["verify"], store) == 0, capsys.readouterr().out
    assert ": matches (written " in capsys.readouterr().out
