"""Hostile input and abuse over real TLS: nothing crashes, good frames still work, nobody gets in."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lems.net import pki as pki_mod
from lems.tools.client import LinkClosed, ReplyTimeout
from lems.wire.framing import StxFramer

from conftest import PASSWORD

QW = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"
CODES = (".10.", ".11.", ".12.", ".13.", ".20.", ".21.", ".22.", ".23.", ".31.")


def assert_alive(c):
    assert c.request(QW).cls == "R"


@pytest.fixture
def term(running):
    return running.signed_on("T0100001", "OR9990100", "OP010001")


# hypothesis drives one connection through many inputs; the switch fixture is shared on purpose.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=200))
def test_random_payloads_each_get_one_answer(term, payload):
    """Any payload in a well-formed frame gets exactly one E (or R) answer; the next good frame works."""
    clean = payload.replace(b"\x02", b"").replace(b"\x03", b"")
    term.send_raw(StxFramer.encode(clean))
    term.send_raw(StxFramer.encode(b"PROBE     " + b" " * 8 + b"HBT"))
    answers = []
    while True:
        out = term.receive()
        if out.ref == "PROBE":
            break
        answers.append(out)
    assert len(answers) <= 1
    for out in answers:
        assert out.cls in ("E", "R")
        if out.cls == "E":
            assert out.text[:4] in CODES, out.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([QW, "QV.OR9990100.LIC/TEST123.LIS/OR", "QG.OR9990100.SER/TESTGUN001",
                        "EG.OR9990100.SER/FZGUN0001.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/FZ-1"]),
       st.data())
def test_mutated_messages_get_a_code(term, text, data):
    raw = bytearray(text.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.sampled_from(b"./,ABZ09 *\n"))
    out = term.request(raw.decode())
    assert out.cls in ("R", "E")
    # A mutated entry may repeat one already made: the file's answer, not a switch code.
    if out.cls == "E" and not out.text.startswith(("REJECT ON FILE", "REJECT NOT ON FILE")):
        assert out.text[:4] in CODES + (".01.", ".30."), out.text
        assert "ORIGINAL MESSAGE" in out.text


def test_nul_and_eight_bit_bytes(term):
    for bad in (b"QW.OR9990100.NAM/DOE\x00", "QW.OR9990100.NAM/DØE".encode("latin-1"), b"\x1b[31mQW"):
        term.send_raw(StxFramer.encode(b"BAD       " + b" " * 8 + bad))
        out = term.receive()
        assert out.cls == "E" and out.text.startswith(".10."), out.text
    assert_alive(term)


def test_wrong_header_length(term):
    term.send_raw(StxFramer.encode(b"QW.OR9990100"))  # no header at all
    assert term.receive().text.startswith(".10.")
    out = term.request(QW[:-1])  # good header, truncated message
    assert out.cls == "E"
    assert_alive(term)


def test_half_a_frame_then_silence_does_not_stall_others(running, term):
    term.send_raw(b"\x02HALF A FRAME AND THEN NOTHING")
    other = running.signed_on("T0200001", "OR9990200", "OP020001")
    assert other.request("QW.OR9990200.NAM/DOE, JOHN Q.DOB/19800101").cls == "R"
    term.send_raw(b"\x03")  # the half frame ends; it is answered and the link goes on
    assert term.receive().cls == "E"
    assert_alive(term)


def test_thousands_of_tiny_writes(term):
    wire = StxFramer.encode(b"TINY      " + b" " * 8 + QW.encode())
    for _ in range(3):
        for i in range(len(wire)):
            term.send_raw(wire[i:i + 1])
    for _ in range(3):
        assert term.reply("TINY").cls == "R"


def test_endless_garbage_closes_only_that_connection(running, term):
    limit = running.service.settings.limits.max_garbage
    other = running.signed_on("T0200001", "OR9990200", "OP020001")
    with pytest.raises((LinkClosed, ConnectionError, OSError, ReplyTimeout)):
        for _ in range(limit // 4096 + 4):
            term.send_raw(b"G" * 4096)
        while True:
            term.receive(timeout=5)
    assert other.request("HBT").text == "HBT"


def test_slow_reader_is_not_buffered_without_limit(home, switch_factory):
    """A terminal that sends and never reads: the switch stops reading it, then drops it; others go on.
    (Without an input rate, so that the write side's back-pressure is what stops the reading.)"""
    set_limits(home, inputs_per_second=0.0)
    running = switch_factory()
    term = running.signed_on("T0100001", "OR9990100", "OP010001")
    other = running.signed_on("T0200001", "OR9990200", "OP020001")
    frame = StxFramer.encode(b"FLOOD     " + b" " * 8 + QW.encode())
    term.sock.settimeout(0.5)
    sent = 0
    try:
        for _ in range(200_000):
            term.sock.sendall(frame * 50)
            sent += 50
    except (socket.timeout, ssl.SSLError, OSError):
        pass  # the switch stopped reading us (back-pressure) or hung up
    assert sent < 200_000 * 50, "the switch never pushed back"
    assert other.request("HBT").text == "HBT"
    protocols = [p for f in running.service.factories for p in f.protocols]
    buffered = [p for p in protocols if p.session and p.session.terminal.id == "T0100001"]
    assert all(p.paused or p.closing or not p.transport.connected for p in buffered)


def set_limits(home, **values) -> None:
    """Change [limits] settings of the home's conf/lems.toml before a switch starts."""
    import re
    import tomllib

    from lems.base.registry import write_atomically

    conf = home / "conf" / "lems.toml"
    text = conf.read_text()
    for name, value in values.items():
        text, n = re.subn(rf"(?m)^{name} = .*$", f"{name} = {value!r}", text)
        assert n == 1, name
    assert all(tomllib.loads(text)["limits"][k] == v for k, v in values.items())
    write_atomically(conf, text)


def security_events(running, event=None):
    from lems.store import journal

    rows = running.call(lambda: journal.search(running.switch.store.conn, kind="security", limit=10_000))
    return [r for r in rows if event is None or r.event == event]


@pytest.mark.parametrize("setting", ["max_connections_per_address", "max_handshakes"])
def test_connection_flood_beyond_the_limit(home, switch_factory, setting):
    """Per address, and unidentified connections in all: the one over the limit is closed before
    TLS and the refusal is journaled; later ones work."""
    set_limits(home, **{setting: 3})
    running = switch_factory()
    raw = []
    try:
        for _ in range(3):
            raw.append(socket.create_connection(("127.0.0.1", running.port), timeout=5))
        extra = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        extra.settimeout(5)
        try:
            assert extra.recv(10) == b""  # closed at once, before TLS
        except ConnectionResetError:
            pass  # or reset: either way no TLS and no frame
        extra.close()
    finally:
        for s in raw:
            s.close()
    deadline = time.monotonic() + 5
    while running.call(lambda: sum(f.total for f in running.service.factories)) and time.monotonic() < deadline:
        time.sleep(0.05)  # an integration test waits for the switch to see the sockets close
    c = running.client("T0100001").connect()
    assert c.banner().cls == "S"
    (refused,) = [r for r in security_events(running) if r.event.startswith("CONNECTION REFUSED")]
    assert refused.outcome == "1" and "127.0.0.1" in refused.text


def test_idle_sockets_time_out_and_do_not_lock_terminals_out(home, switch_factory):
    """Plain TCP sockets that never start TLS: dropped after handshake_seconds, and while they are
    held they fill only the handshake pool, so a real terminal still gets its banner."""
    set_limits(home, handshake_seconds=0.5, max_handshakes=8)
    running = switch_factory()
    idle = [socket.create_connection(("127.0.0.1", running.port), timeout=5) for _ in range(30)]
    try:
        for s in idle:
            s.settimeout(5)
            try:
                assert s.recv(10) == b""  # refused (pool full) or dropped at the timeout
            except ConnectionResetError:
                pass
        c = running.client("T0100001").connect()
        assert c.banner().cls == "S"
        assert c.sign_on("OR9990100", "OP010001", PASSWORD).cls == "R"
    finally:
        for s in idle:
            s.close()
    events = {r.event: r for r in security_events(running)}
    assert "HANDSHAKE TIMEOUT" in events and "CONNECTION REFUSED, HANDSHAKE POOL FULL" in events


def test_full_handshake_pool_makes_room_for_a_real_terminal(home, switch_factory, monkeypatch):
    """The pool is full of sockets that never handshake (and never time out here): a new connection
    pushes out the one that has waited longest, so the terminal is not locked out."""
    from lems.net.link import TerminalFactory

    monkeypatch.setattr(TerminalFactory, "EVICT_AFTER_SECONDS", 0.0)  # every waiting socket is stale
    set_limits(home, handshake_seconds=60.0, max_handshakes=4)
    running = switch_factory()
    idle = [socket.create_connection(("127.0.0.1", running.port), timeout=5) for _ in range(4)]
    try:
        c = running.client("T0100001").connect()
        assert c.banner().cls == "S"
        idle[0].settimeout(5)
        try:
            assert idle[0].recv(10) == b""  # the oldest was dropped for the terminal
        except ConnectionResetError:
            pass
    finally:
        for s in idle:
            s.close()
    assert security_events(running, "HANDSHAKE DROPPED FOR A NEWER CONNECTION")


def test_max_connections_counts_identified_terminals(home, switch_factory):
    set_limits(home, max_connections=1)
    running = switch_factory()
    first = running.signed_on("T0100001", "OR9990100", "OP010001")
    other = running.client("T0200001").connect().receive()
    assert other.cls == "E" and other.text.startswith(".21. SWITCH AT ITS LIMIT OF 1 TERMINAL CONNECTIONS")
    again = running.client("T0100001").connect()  # a terminal may always replace its own session
    assert again.banner().cls == "S"
    assert "REPLACED" in first.receive().text


def test_sign_on_flood_is_held_capped_rate_limited_and_answered(home, switch_factory, monkeypatch):
    """Many SONs in one write: at most one password check at a time, reading paused at the held cap,
    each SON over the sign-on rate answered .20. (not checked, not counted towards the lockout),
    one journal record per burst; another terminal is served meanwhile."""
    import threading

    from lems.base import credentials
    from lems.net.link import TerminalProtocol
    from lems.wire.headers import input_bytes

    set_limits(home, max_held_frames=8, signon_burst=3, signons_per_second=1.0)
    in_flight, most, lock = [0], [0], threading.Lock()
    real_verify = credentials.verify_password

    def counting_verify(password, stored):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            return real_verify(password, stored)
        finally:
            with lock:
                in_flight[0] -= 1

    held, paused = [0], [False]
    real_update = TerminalProtocol._update_reading

    def watching_update(self):
        held[0] = max(held[0], len(self.held))
        real_update(self)
        paused[0] = paused[0] or self.reading_paused

    monkeypatch.setattr(credentials, "verify_password", counting_verify)
    monkeypatch.setattr(TerminalProtocol, "_update_reading", watching_update)
    running = switch_factory()
    other = running.signed_on("T0200001", "OR9990200", "OP020001")
    c = running.client("T0100001").connect()
    c.banner()
    refs = [f"F{i:09d}" for i in range(60)]
    c.send_raw(b"".join(StxFramer.encode(input_bytes(r, "", "SON.OR9990100.OPR/OP010001.PWD/Wrong#1"))
                        for r in refs))
    assert other.request("QW.OR9990200.NAM/DOE, JOHN Q.DOB/19800101").cls == "R"
    replies = [c.reply(r) for r in refs]
    assert all(r.cls == "E" for r in replies)
    texts = [r.text.split("\n")[0] for r in replies]
    assert texts[:3] == [".20. SIGN-ON REJECTED"] * 3
    assert texts[3:] == [".20. SIGN-ON ATTEMPTS OVER 1 PER SECOND - NOT CHECKED, SIGN ON AGAIN LATER"] * 57
    assert all("Wrong#1" not in r.text for r in replies) and "PWD/*" in replies[-1].text
    assert most[0] == 1, "more than one password check at a time for one connection"
    assert paused[0] and held[0] <= 60
    running.clock.advance(5)  # the bucket refills on the switch clock; three failures did not lock
    assert c.sign_on("OR9990100", "OP010001", PASSWORD).cls == "R"
    assert [r.ref for r in security_events(running, "SIGN-ON RATE EXCEEDED")] == ["F000000003"]
    (ended,) = security_events(running, "SIGN-ON RATE BURST ENDED")
    assert ended.outcome == "57"
    assert len(security_events(running, "SIGN-ON FAILED")) == 3


def test_input_rate_per_terminal(home, switch_factory, monkeypatch):
    """Inputs over the terminal's rate get one .21. each with their REF; the journal gets two
    records for the burst, not one per frame; the rate holds across a reconnection."""
    from lems.net.link import TerminalProtocol
    from lems.store import journal
    from lems.wire.headers import input_bytes

    monkeypatch.setattr(TerminalProtocol, "OVER_RATE_PAUSE", 0.05)  # the reading pause after a refusal

    set_limits(home, inputs_per_second=1.0, input_burst=5)
    running = switch_factory()
    c = running.signed_on("T0100001", "OR9990100", "OP010001")  # the SON took one token
    refs = [f"H{i:09d}" for i in range(10)]
    c.send_raw(b"".join(StxFramer.encode(input_bytes(r, "", "HBT")) for r in refs))
    replies = [c.reply(r) for r in refs]
    assert [r.cls for r in replies] == ["R"] * 4 + ["E"] * 6
    assert replies[-1].text.startswith(".21. TERMINAL T0100001 OVER ITS INPUT RATE OF 1 PER SECOND")
    assert "ORIGINAL MESSAGE\nHBT" in replies[-1].text
    c.close()
    deadline = time.monotonic() + 5
    while running.call(lambda: running.switch.hub.connected("T0100001")) and time.monotonic() < deadline:
        time.sleep(0.02)  # until the switch has seen the first connection go (it ends the burst)
    again = running.client("T0100001").connect()
    again.banner()
    assert again.request("HBT").text.startswith(".21.")  # a new connection does not reset the bucket
    running.clock.advance(2)
    assert again.request("HBT").text == "HBT"
    assert [r.ref for r in security_events(running, "INPUT RATE EXCEEDED")] == ["H000000004", "R000000001"]
    assert [r.outcome for r in security_events(running, "INPUT RATE BURST ENDED")] == ["6", "1"]
    rows = running.call(lambda: journal.search(running.switch.store.conn, terminal="T0100001", mke="HBT"))
    assert len([r for r in rows if r.kind == "in"]) == 5  # refused inputs are not journaled one by one


def test_expired_certificate_fails_handshake(running, tmp_path):
    ca = pki_mod.Pki(running.home / "var" / "pki")
    now = dt.datetime.now(dt.timezone.utc)
    issued = ca.issue_terminal("T0100001", "OR9990100", not_before=now - dt.timedelta(days=800),
                               not_after=now - dt.timedelta(days=1), cert_path=tmp_path / "old.crt",
                               key_path=tmp_path / "old.key")
    c = running.client("T0100001", cert=issued.cert_path, key=issued.key_path)
    with pytest.raises((ssl.SSLError, LinkClosed, ConnectionError, OSError)):
        c.connect()
        c.banner(timeout=5)


def test_revoked_terminal_stays_out_whatever_it_presents(home, switch_factory):
    import attrs

    from lems.tools import home as home_mod
    from lems.base.registry import Registry

    registry = Registry.load(home / "terminals")
    registry = registry.with_terminal(attrs.evolve(registry.terminals["T0100001"], status="revoked"))
    # a freshly issued certificate does not bring a revoked terminal back
    home_mod.issue_terminal(registry, pki_mod.Pki(home / "var" / "pki"), registry.terminals["T0100001"])
    out = switch_factory().client("T0100001").connect().receive()
    assert out.text.startswith(".21.") and "REVOKED" in out.text
