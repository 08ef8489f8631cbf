"""The emulated clock (PROTOCOL.md 8): unit tests, the console in process, and `lems serve` as a process."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time

import pytest
from conftest import PASSWORD, serve_process
from test_delivery import wait_for
from test_hits import YQ

from lems.admin.operations import Admin
from lems.admin.shell import Console
from lems.base.clock import EmulatedClock, FakeClock, parse_advance, span
from lems.base.conf import ConfError, Settings
from lems.store import Store, switch_time
from lems.tools.client import TerminalClient


def adjustable(home, value="true"):
    conf = home / "conf" / "lems.toml"
    conf.write_text(conf.read_text().replace("adjustable = false", f"adjustable = {value}"))


# -- the clock ------------------------------------------------------------------------------

def test_emulated_clock_moves_now_and_monotonic_and_never_back():
    base = FakeClock()
    clock = EmulatedClock(base)
    assert clock.now() == base.now() and clock.monotonic() == base.monotonic() and not clock.ahead()
    before, after = clock.advance(dt.timedelta(minutes=31))
    assert (before, after) == (base.now(), base.now() + dt.timedelta(minutes=31))
    assert clock.now() == after and clock.monotonic() == base.monotonic() + 31 * 60
    assert span(clock.ahead()) == "31m"
    for bad, why in ((dt.timedelta(minutes=-5), "NEVER MOVES BACKWARDS"), (dt.timedelta(0), "NOTHING TO ADVANCE"),
                     (dt.timedelta(days=401), "AT MOST 400 DAYS")):
        with pytest.raises(ValueError, match=why):
            clock.advance(bad)
    assert clock.now() == after
    # A system clock set back: switch time waits at the last advance's time, never earlier.
    resumed = EmulatedClock(FakeClock(current=base.now() - dt.timedelta(hours=1)), offset=31 * 60, floor=after)
    assert resumed.now() == after
    with pytest.raises(ValueError, match="NOT ADJUSTABLE"):
        EmulatedClock(base, adjustable=False).advance(dt.timedelta(minutes=1))


@pytest.mark.parametrize("text, seconds", [("31m", 1860), ("2h", 7200), ("60D", 5184000), ("-5m", -300)])
def test_parse_advance(text, seconds):
    assert parse_advance(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["31", "m", "1w", "1.5h", "31 m"])
def test_parse_advance_refuses(text):
    with pytest.raises(ValueError):
        parse_advance(text)


def test_span():
    assert [span(dt.timedelta(seconds=s)) for s in (0, 60, 93784, 400 * 86400)] == ["0m", "1m", "1d 2h 3m 4s",
                                                                                  "400d"]


def test_clock_setting(home):
    assert Settings.load(home).clock.adjustable is False
    adjustable(home)
    assert Settings.load(home).clock.adjustable is True
    with pytest.raises(ConfError, match="clock.adjustable must be true or false"):
        Settings.from_dict(home, {"listener": [{"name": "t"}], "clock": {"adjustable": "yes"}})
    with pytest.raises(ConfError, match=r"\[clock\] has unknown settings"):
        Settings.from_dict(home, {"listener": [{"name": "t"}], "clock": {"offset": 1}})


def test_the_offset_is_kept_and_resumed(tmp_path):
    store = Store.open(tmp_path / "s.sqlite")
    base = FakeClock()
    assert switch_time.switch_clock(store.conn, False, base) is base
    clock = switch_time.switch_clock(store.conn, True, base)
    assert isinstance(clock, EmulatedClock) and not clock.ahead()
    _, after = clock.advance(dt.timedelta(days=2))
    store.transaction(lambda conn: switch_time.save(conn, clock.offset, after))
    store.close()
    store = Store.open(tmp_path / "s.sqlite")
    again = switch_time.switch_clock(store.conn, True, base)
    assert again.now() == after and again.adjustable
    kept = switch_time.switch_clock(store.conn, False, base)  # no longer adjustable: still never earlier
    assert kept.now() == after and not kept.adjustable
    store.close()


# -- the console in process (FakeClock under the emulated clock) -------------------------------

def console(running):
    return Console(Admin(running.switch, running.service), who="admin")


def run(running, line):
    return running.call(console(running).execute, line)


def test_not_adjustable_home_refuses_advance(running):
    reply = run(running, "clock advance 31m")
    assert not reply.ok
    assert reply.lines == ["REFUSED: THE CLOCK IS NOT ADJUSTABLE ON THIS SWITCH "
                           "(A TEST SYSTEM SETS [clock] adjustable = true IN conf/lems.toml)"]
    shown = run(running, "clock")
    assert shown.ok and shown.lines[1] == "the system clock; the clock is not adjustable on this switch"


def test_advance_locks_the_session_and_is_journaled(home, switch_factory, clock):
    adjustable(home)
    running = switch_factory()
    before = clock.now()
    assert run(running, "clock").lines[1].startswith("offset       none")
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    for line, why in (("clock advance 0m", "NOTHING TO ADVANCE"), ("clock advance -5m", "NEVER MOVES BACKWARDS"),
                      ("clock advance 401d", "AT MOST 400 DAYS")):
        reply = run(running, line)
        assert not reply.ok and why in reply.lines[0], reply
    assert run(running, "clock advance 5x").lines == ["usage: clock [advance <N>m|h|d]"]
    reply = run(running, "clock advance 31m")
    assert reply.ok, reply
    assert reply.lines == [
        f"switch time advanced 31m: {before:%Y-%m-%d %H:%M:%S} UTC -> "
        f"{before + dt.timedelta(minutes=31):%Y-%m-%d %H:%M:%S} UTC",
        "now 31m ahead of the system clock; timers due by then have run"]
    notice = wait_for(c, "SESSION LOCKED")
    assert notice.text == "SESSION LOCKED AFTER 30 MINUTES WITHOUT ACTIVITY - SIGN ON AGAIN"
    assert run(running, "clock").lines[1] == "offset       31m ahead of the system clock (1 advance(s) kept in the store)"
    rows = running.switch.store.conn.execute(
        "SELECT event, operator, text FROM journal WHERE kind = 'admin' AND event LIKE 'CLOCK%'").fetchall()
    assert rows == [("CLOCK ADVANCE", "ADMIN",
                     f"SWITCH TIME ADVANCED 31m FROM {before:%Y-%m-%dT%H:%M:%SZ} TO "
                     f"{before + dt.timedelta(minutes=31):%Y-%m-%dT%H:%M:%SZ}, 31m AHEAD OF THE SYSTEM CLOCK")]
    assert run(running, "help clock").lines[0] == "clock [advance <N>m|h|d]"
    assert running.call(console(running).complete, "clock a") == ("a", ["advance"])

    running.stop()  # a restart resumes at the advanced time
    again = switch_factory()
    assert again.switch.clock.now() == before + dt.timedelta(minutes=31)


# -- `lems serve` as a process ------------------------------------------------------------------

def lems_console(home, port, *words):
    done = subprocess.run([sys.executable, "-m", "lems", "console", "--home", str(home), "--port", str(port),
                           "--builtin", *words], capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout


def printed(proc, pattern):
    """The first match of ``pattern`` in what `lems serve` printed at start (its lines end with "home ...")."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = list(proc.lines)
        for line in lines:
            m = re.search(pattern, line)
            if m:
                return m
        if any(line.startswith("home ") for line in lines):
            return None
        time.sleep(0.05)  # waiting for the server's output line, not for time to pass
    pytest.fail("lems serve printed no start lines:\n" + "".join(proc.lines))


def console_port(proc):
    m = printed(proc, r"console \(SSH\): 127\.0\.0\.1:(\d+)")
    assert m, proc.lines
    return int(m.group(1))


def client(home, port, terminal):
    pki = home / "var" / "pki"
    return TerminalClient("127.0.0.1", port, pki / "ca.crt", pki / "terminals" / f"{terminal}.crt",
                          pki / "terminals" / f"{terminal}.key", "stx", timeout=20).connect()


def signed_on(home, port, terminal, ori, operator):
    c = client(home, port, terminal)
    c.banner()
    reply = c.sign_on(ori, operator, PASSWORD)
    assert reply.cls == "R" and reply.text.startswith("SIGN-ON ACCEPTED"), reply
    return c, reply


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.reader.join(timeout=10)


def test_serve_with_an_adjustable_clock(home):
    import tomllib

    adjustable(home)
    # OP010002's certification (2 years) ends about 40 days from today's date.
    ops = home / "terminals" / "operators.toml"
    certified = next(o for o in tomllib.loads(ops.read_text())["operator"] if o["id"] == "OP010002")["certified"]
    today = dt.datetime.now(dt.timezone.utc).date()
    new = (today - dt.timedelta(days=2 * 365 - 40)).isoformat()
    text = ops.read_text()
    start = text.index('id = "OP010002"')
    ops.write_text(text[:start] + text[start:].replace(f'certified = "{certified}"', f'certified = "{new}"', 1))

    proc, port = serve_process(home)
    clients = []
    try:
        assert printed(proc, r"^WARNING: the switch clock is adjustable \(\[clock\] adjustable = true\): "
                             r"test systems only; switch time "), proc.lines
        cport = console_port(proc)
        work, reply = signed_on(home, port, "T0100001", "OR9990100", "OP010002")
        clients.append(work)
        assert "CERTIFICATION" not in reply.text
        requester, _ = signed_on(home, port, "T0100002", "OR9990100", "OP010001")  # mobile: never idles out
        clients.append(requester)
        assert requester.request(YQ).cls == "R"  # urgent: 10 minutes, entering agency not connected

        status, out = lems_console(home, cport, "clock", "advance", "31m")
        assert status == 0 and out.startswith("switch time advanced 31m: "), out
        assert wait_for(work, "SESSION LOCKED").text.startswith("SESSION LOCKED AFTER 30 MINUTES")
        notice = wait_for(requester, "NOT ANSWERED")  # the hit confirmation timer fired in the same jump
        assert notice.text.startswith("HIT CONFIRMATION NOT ANSWERED")

        status, out = lems_console(home, cport, "clock", "advance", "15d")
        assert status == 0, out
        again, reply = signed_on(home, port, "T0100001", "OR9990100", "OP010002")  # disconnected: idle 60 min
        clients.append(again)
        assert "WARNING - OPERATOR CERTIFICATION EXPIRES" in reply.text, reply
        status, out = lems_console(home, cport, "clock", "advance", "30d")
        assert status == 0, out
        again.close()
        late, reply = signed_on(home, port, "T0100001", "OR9990100", "OP010002")
        clients.append(late)
        assert "CERTIFICATION EXPIRED" in reply.text and "TRANSACTIONS WILL BE REFUSED" in reply.text, reply
        status, out = lems_console(home, cport, "clock", "advance", "-1d")
        assert status == 1 and "NEVER MOVES BACKWARDS" in out, out
        status, out = lems_console(home, cport, "clock")
        assert status == 0 and "45d 31m ahead of the system clock (3 advance(s) kept in the store)" in out, out
    finally:
        for c in clients:
            c.close()
        stop(proc)
    # Restarted, the switch resumes where it was.
    proc, port = serve_process(home)
    try:
        assert printed(proc, r"^WARNING: the switch clock is adjustable .*, 45d 31m ahead of the system clock$"), \
            proc.lines
    finally:
        stop(proc)


def test_serve_refuses_advance_on_a_home_that_is_not_adjustable(home):
    proc, _ = serve_process(home)
    try:
        cport = console_port(proc)
        assert printed(proc, "adjustable") is None, proc.lines
        status, out = lems_console(home, cport, "clock", "advance", "31m")
        assert status == 1 and "THE CLOCK IS NOT ADJUSTABLE ON THIS SWITCH" in out, out
    finally:
        stop(proc)
