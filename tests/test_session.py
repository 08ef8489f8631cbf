"""The sans-IO core driven with bytes: no reactor, no socket, no TLS.

A switch is built from the demo home on an in-memory store with a fake clock
(lems.core.build), each terminal is a ``Session`` fed through a real framer,
and what comes back is decoded with the output header grammar.  Password
checks, which the link runs off the reactor thread, run inline here.
"""

from __future__ import annotations

import itertools

import pytest

from lems.base import credentials
from lems.base.clock import FakeClock
from lems.base.conf import Settings
from lems.base.errors import Reject
from lems.base.events import CheckPassword, Close, Send
from lems.core.build import build_switch
from lems.core.session import TRANSITIONS, State, Step, admitted
from lems.store import Store
from lems.wire import framing
from lems.wire.headers import Input, Output

from conftest import PASSWORD

QW = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"
AM = "AM.OR9990100.OR9990200.*AMCTL00001.TXTPLEASE CALL RECORDS RE CASE ACC-0001"


class Wire:
    """One terminal's end of the link, in memory."""

    def __init__(self, core: "Core", terminal_id: str) -> None:
        self.core = core
        switch = core.switch
        self.session = switch.new_session(switch.registry.terminals[terminal_id], "127.0.0.1:1")
        self.framer = framing.StxFramer(16384, 65536)
        self.out: list[Output] = []
        self.closed: list[str] = []
        self.refs = (f"R{n:09d}" for n in itertools.count(1))
        switch.hub.attach(self.session, self.act)
        self.act(switch.start(self.session))
        switch.session_started(self.session)

    def act(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.out.append(Output.from_wire(action.payload))
            elif isinstance(action, Close):
                self.closed.append(action.reason)
            elif isinstance(action, CheckPassword):
                ok = credentials.verify_password(action.password, action.stored)
                self.act(self.core.switch.signon_checked(self.session, action.token, ok))

    def feed(self, data: bytes) -> list[Output]:
        """Bytes as the socket delivers them; the frames the switch wrote back."""
        before = len(self.out)
        for event in self.framer.feed(data):
            self.act(self.core.switch.receive(self.session, event))
        self.core.store.commit()
        return self.out[before:]

    def send(self, text: str, opr: str = "") -> Output:
        replies = self.feed(framing.StxFramer.encode(Input(next(self.refs), opr, text).to_wire()))
        assert replies, f"no reply to {text!r}"
        return replies[-1]

    def sign_on(self, ori: str, operator: str, password: str = PASSWORD) -> Output:
        return self.send(f"SON.{ori}.OPR/{operator}.PWD/{password}")


class Core:
    def __init__(self, home) -> None:
        self.clock = FakeClock()
        self.store = Store.open(":memory:")
        self.switch = build_switch(home, Settings.load(home), self.store, self.clock)

    def wire(self, terminal_id: str) -> Wire:
        return Wire(self, terminal_id)

    def journal(self, kind: str) -> list[tuple]:
        return self.store.conn.execute("SELECT mke, cls, osn, terminal FROM journal WHERE kind = ? ORDER BY seq",
                                       (kind,)).fetchall()


@pytest.fixture
def core(home) -> Core:
    return Core(home)


# -- the transition table ---------------------------------------------------------------


def test_every_state_and_key_has_exactly_one_transition():
    kinds = ("HBT", "ACK", "SON", "SOF", "QW")
    for state in State:
        for mke in kinds:
            got = admitted(state, mke)
            if state is State.CLOSED:
                assert got is None
            else:
                assert got is TRANSITIONS[(state, mke if mke != "QW" else "*")]
    live = [s for s in State if s is not State.CLOSED]
    assert len(TRANSITIONS) == len(live) * len(kinds)


@pytest.mark.parametrize("state, mke, expected", [
    (State.IDENTIFIED, "QW", ".20. SIGN-ON REQUIRED"),
    (State.LOCKED, "QW", ".20. SESSION LOCKED AFTER INACTIVITY - SIGN ON AGAIN"),
    (State.INTERFACE, "SON", ".22. INTERFACE TERMINALS NAME THE OPERATOR IN THE INPUT HEADER; NO SIGN-ON"),
    (State.SIGNED_ON, "QW", Step.TRANSACT),
    (State.INTERFACE, "QW", Step.INTERFACE),
    (State.LOCKED, "SON", Step.SIGN_ON),
])
def test_transitions_say_what_an_input_may_do(state, mke, expected):
    got = admitted(state, mke)
    if isinstance(got, Reject):
        got = f"{got.code} {got.reason}"
    assert got == expected


# -- bytes in, frames out --------------------------------------------------------------------


def test_banner_then_heartbeat_then_sign_on_required(core):
    t = core.wire("T0100001")
    assert [o.cls for o in t.out] == ["S"] and t.out[0].osn == 1
    assert (t.send("HBT.OR9990100").cls, t.out[-1].text) == ("R", "HBT")
    refused = t.send(QW)
    assert refused.cls == "E" and refused.text.startswith(".20. SIGN-ON REQUIRED")
    assert t.session.state is State.IDENTIFIED


def test_sign_on_then_inquiry_numbered_and_journaled(core):
    t = core.wire("T0100001")
    accepted = t.sign_on("OR9990100", "OP010001")
    assert accepted.cls == "R" and accepted.text.startswith("SIGN-ON ACCEPTED OP010001 OR9990100 TERMINAL T0100001")
    hit = t.send(QW)
    assert hit.cls == "R" and "NAM/DOE, JOHN Q" in hit.text
    assert [o.osn for o in t.out] == [1, 2, 3]
    assert [o.ref for o in t.out] == ["", "R000000001", "R000000002"]
    assert [m for m, *_ in core.journal("in")] == ["SON", "QW"]
    assert [(cls, osn) for _, cls, osn, _ in core.journal("out")] == [("S", 1), ("R", 2), ("R", 3)]


def test_a_frame_split_at_every_byte_gets_the_same_reply(core):
    t = core.wire("T0100001")
    t.sign_on("OR9990100", "OP010001")
    whole = t.send(QW).text
    frame = framing.StxFramer.encode(Input("R000000099", "", QW).to_wire())
    replies = []
    for byte in frame:
        replies += t.feed(bytes([byte]))
    assert [r.text for r in replies] == [whole]


def test_wrong_password_then_lockout_after_the_limit(core):
    t = core.wire("T0100001")
    limit = core.switch.settings.session.failed_signons
    for _ in range(limit):
        assert t.sign_on("OR9990100", "OP010001", "wrong").text.startswith(".20. SIGN-ON REJECTED")
    locked = t.sign_on("OR9990100", "OP010001")
    assert locked.text.startswith(".20. SIGN-ON REJECTED - OPERATOR LOCKED")
    assert core.switch.locked_operators() == ["OP010001"]


def test_inactivity_locks_then_disconnects_on_the_clock(core):
    t = core.wire("T0100001")
    rules = core.switch.settings.session
    t.sign_on("OR9990100", "OP010001")
    core.clock.advance(rules.lock_after_minutes * 60 - 1)
    core.switch.tick()
    assert t.session.state is State.SIGNED_ON
    core.clock.advance(1)
    core.switch.tick()
    assert t.session.state is State.LOCKED and t.out[-1].cls == "S" and "SESSION LOCKED" in t.out[-1].text
    assert t.send(QW).text.startswith(".20. SESSION LOCKED AFTER INACTIVITY")
    # The refused input was operator activity: the disconnect is counted from it.
    core.clock.advance(rules.disconnect_after_minutes * 60)
    core.switch.tick()
    assert t.closed == ["idle timeout"] and "DISCONNECTED AFTER" in t.out[-1].text
    assert t.feed(framing.StxFramer.encode(Input("R000000100", "", QW).to_wire())) == []


def test_a_tick_visits_only_the_sessions_whose_time_may_have_come(core, monkeypatch):
    """Ten thousand idle terminals must not cost every tick a look at each (issue 16)."""
    from lems.core.session import Session

    visited: list[str] = []
    real_tick = Session.tick
    monkeypatch.setattr(Session, "tick", lambda self: visited.append(self.terminal.id) or real_tick(self))
    early, late = core.wire("T0100001"), core.wire("T0200001")
    early.sign_on("OR9990100", "OP010001")
    core.switch.tick()
    assert sorted(visited) == ["T0100001", "T0200001"]  # each looked at once after it connected
    visited.clear()
    lock = core.switch.settings.session.lock_after_minutes * 60
    core.clock.advance(60)
    late.sign_on("OR9990200", "OP020001")
    for _ in range(5):
        core.clock.advance(1)
        core.switch.tick()
    assert visited == []  # nobody is due for half an hour
    core.clock.advance(lock - 65)
    core.switch.tick()
    # Both were due by the time each had when it was last looked at (the late one before its
    # sign-on): the early one locks, the late one, signed on a minute later, is put back.
    assert sorted(visited) == ["T0100001", "T0200001"] and early.session.state is State.LOCKED
    assert late.session.state is State.SIGNED_ON
    visited.clear()
    core.clock.advance(59)
    core.switch.tick()
    assert visited == [] and late.session.state is State.SIGNED_ON
    core.clock.advance(1)
    core.switch.tick()
    assert visited == ["T0200001"] and late.session.state is State.LOCKED


def test_short_header_and_garbage_are_refused_with_10(core):
    t = core.wire("T0100001")
    assert t.feed(framing.StxFramer.encode(b"QW"))[0].text.startswith(".10. INPUT HEADER MUST BE 18")
    assert any(o.text.startswith(".10.") for o in t.feed(b"\x02" + b"\x07" * 40 + b"\x03"))


def test_interface_terminal_names_its_operator_and_may_not_sign_on(core):
    t = core.wire("IF010001")
    assert t.session.state is State.INTERFACE
    assert t.sign_on("OR9990100", "OP010001").text.startswith(".22. INTERFACE TERMINALS")
    assert t.send(QW).text.startswith(".20. INTERFACE INPUT MUST NAME THE OPERATOR")
    assert t.send(QW, opr="OP010001").cls == "R"


def test_am_to_an_offline_agency_is_queued_then_sent_on_connect(core):
    sender = core.wire("T0100001")
    sender.sign_on("OR9990100", "OP010001")
    replies = sender.feed(framing.StxFramer.encode(Input("R000000050", "", AM).to_wire()))
    # The sender's .02. notice goes before the reply, both with the input's REF.
    assert [(o.cls, o.ref) for o in replies] == [("S", "R000000050"), ("R", "R000000050")]
    assert replies[0].text.startswith(".02. DESTINATION OUT OF SERVICE, MESSAGE QUEUED, WILL FORWARD - OR9990200")
    assert "OR9990200 QUEUED - NOT CONNECTED, WILL FORWARD" in replies[1].text.split("\n")
    assert core.switch.router.delivery.depths() == {"T0200001": 1}
    receiver = core.wire("T0200001")
    assert [o.cls for o in receiver.out] == ["S", "U"]
    assert receiver.out[1].text.split("\n") == ["AM.OR9990100.OR9990200", "*AMCTL00001", "TXT",
                                                "PLEASE CALL RECORDS RE CASE ACC-0001"]
    core.store.commit()
    assert core.switch.router.delivery.depths() == {}


def test_am_to_a_connected_agency_is_written_before_the_reply(core):
    receiver = core.wire("T0200001")
    sender = core.wire("T0100001")
    sender.sign_on("OR9990100", "OP010001")
    reply = sender.send(AM)
    assert reply.text.split("\n")[-1] == "OR9990200 DELIVERED"
    assert receiver.out[-1].cls == "U" and receiver.out[-1].text.startswith("AM.OR9990100.OR9990200")
    assert core.switch.router.delivery.depths() == {}
