"""`lems term` as a person uses it: a process on a pseudo-terminal (the standard library's pty),
against a real switch over TLS.  Waits are on the terminal's output, with deadlines."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading

import pytest
from conftest import PASSWORD

from lems.admin.operations import Admin
from lems.store.journal import search


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty, so Ctrl-C is SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Pty:
    """`python -m lems term ...` on a pseudo-terminal; its output collected by a thread."""

    def __init__(self, *args: str, cwd) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "TERM": "xterm", "INPUTRC": "/dev/null"}
        self.proc = subprocess.Popen([sys.executable, "-m", "lems", "term", *args], stdin=slave, stdout=slave,
                                     stderr=slave, cwd=cwd, env=env, close_fds=True, preexec_fn=_own_terminal)
        os.close(slave)
        self.master = master
        self.out = b""
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                data = b""
            with self.changed:
                if not data:
                    self.eof = True
                    self.changed.notify_all()
                    return
                self.out += data
                self.changed.notify_all()

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace")

    def expect(self, what: str, count: int = 1, timeout: float = 20) -> str:
        with self.changed:
            if not self.changed.wait_for(lambda: self.text.count(what) >= count, timeout):
                raise AssertionError(f"{what!r} x{count} never came; got {self.text!r}")
            return self.text

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.reader.join(5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        os.close(self.master)


@pytest.fixture
def term(running, tmp_path):
    started = []

    def start(terminal: str = "T0100001", *extra: str) -> Pty:
        p = Pty(terminal, "--home", str(running.home), "--port", str(running.port), *extra, cwd=tmp_path)
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


def test_a_person_at_the_terminal(running, term):
    t = term("T0100001", "--operator", "OP010001", "--password", PASSWORD)
    out = t.expect("T0100001> ")
    # banner, then the sign-on reply, then the prompt: the prompt comes after the reply
    assert out.index("RESTRICTED GOVERNMENT SYSTEM") < out.index("SIGN-ON ACCEPTED") < out.index("T0100001> ")
    t.type("HBT\r")
    out = t.expect("T0100001> ", 2)
    assert out.rindex("--- REPLY OSN") < out.rindex("T0100001> ")
    # Half a line typed, then traffic arrives: printed above it, the typed text drawn again.
    t.type("QW.OR99")
    t.expect("QW.OR99")
    sheriff = running.signed_on("T0200001", "OR9990200", "OP020001")
    assert sheriff.request("AM.OR9990200.OR9990100.TXT/CALL THE SHERIFF").cls == "R"
    out = t.expect("\r\x1b[K--- UNSOLICITED OSN")
    after = t.expect("T0100001> QW.OR99", 1)
    tail = after[after.index("\r\x1b[K--- UNSOLICITED"):]
    assert "CALL THE SHERIFF" in tail and tail.index("CALL THE SHERIFF") < tail.index("T0100001> QW.OR99")
    t.type("90100.NAM/DOE, JOHN Q.DOB/19800101\r")
    t.expect("MKE/WANTED PERSON")
    t.expect("T0100001> ", 4)
    t.type("\x1b[A\x1b[A\r")  # history: two lines up is HBT
    t.expect("\nHBT", 2)
    t.expect("T0100001> ", 5)  # back at the prompt
    # Ctrl-D: signed off, goodbye, exit 0.
    t.type("\x04")
    t.expect("goodbye")
    assert t.wait() == 0
    assert "SIGN-OFF ACCEPTED OR9990100" in t.text
    events = running.call(lambda: [r.event for r in search(running.switch.store.conn, limit=1000,
                                                           terminal="T0100001", kind="security")])
    assert "SIGN-OFF" in events


def test_ctrl_c_signs_off_and_says_goodbye(running, term):
    t = term("T0100001", "--operator", "OP010001", "--password", PASSWORD)
    t.expect("T0100001> ")
    # Under a heavily loaded machine a SIGINT can land between two reads of the line;
    # a person presses again, and so does the test (at most three times).
    for _ in range(3):
        t.type("\x03")
        try:
            t.expect("goodbye", timeout=5)
            break
        except AssertionError:
            continue
    assert t.wait() == 0 and "goodbye" in t.text


def test_the_terminal_ends_at_once_when_the_switch_closes_the_connection(running, term):
    t = term("T0100002", "--operator", "OP010001", "--password", PASSWORD)
    t.expect("T0100002> ")
    t.type("HB")  # half a line, no Enter: the terminal must not wait for one
    t.expect("HB")
    running.call(lambda: Admin(running.switch).set_status("revoke", "T0100002"))
    t.expect("TERMINAL T0100002 REVOKED")
    t.expect("lems term ends")
    assert t.wait() == 1
    assert "the switch closed the connection" in t.text


def test_a_refused_terminal_shows_the_reason_and_ends(running, term):
    running.call(lambda: Admin(running.switch).set_status("revoke", "T0100002"))
    t = term("T0100002")
    t.expect("lems term ends")
    assert t.wait() == 1
    assert ".21. TERMINAL T0100002 IS REVOKED" in t.text
