"""The link's connection limits and buckets on a fake reactor clock (twisted.internet.task.Clock).

No TLS and no sockets: the factory is given a stand-in switch and outbox, and
protocols a StringTransport; time moves only when the test advances the clock.
The same limits over real TLS are in tests/test_faults.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from lems.base.conf import Limits
from lems.base.errors import Reject
from lems.net.link import Bucket, DropReport, Outbox, Refused, TerminalFactory, TerminalProtocol
from lems.wire.secrets import mask


class StandInSwitch:
    def __init__(self, **limits) -> None:
        self.settings = SimpleNamespace(limits=Limits(**limits))
        self.records: list[dict] = []
        self.hub = SimpleNamespace(sessions={}, connected=lambda terminal_id: False)

    def audit(self, kind, session=None, **fields) -> int:
        self.records.append({"kind": kind, **fields})
        return len(self.records)


def factory_on(clock: Clock, **limits) -> TerminalFactory:
    switch = StandInSwitch(**limits)
    outbox = Outbox(SimpleNamespace(commit=lambda: None), clock)
    return TerminalFactory(switch, clock, outbox, "terminals", "stx")


def connect(factory: TerminalFactory, port: int, host: str = "127.0.0.1"):
    proto = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def events(factory: TerminalFactory, name: str) -> list[dict]:
    return [r for r in factory.switch.records if r.get("event") == name]


def test_a_handshake_not_finished_in_time_is_dropped_and_journaled():
    clock = Clock()
    factory = factory_on(clock, handshake_seconds=3.0)
    proto, transport = connect(factory, 40001)
    clock.advance(2.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting
    (record,) = events(factory, "HANDSHAKE TIMEOUT")
    assert record["outcome"] == "1" and record["remote"] == "127.0.0.1:40001"
    proto.connectionLost()
    assert factory.total == 0 and not factory.handshaking and not factory.connections


def test_handshake_seconds_zero_is_no_timeout():
    clock = Clock()
    factory = factory_on(clock, handshake_seconds=0)
    _, transport = connect(factory, 40001)
    clock.advance(3600)
    assert not transport.disconnecting and not clock.getDelayedCalls()


def test_the_handshake_pool_drops_the_oldest_waiter_then_refuses_young_ones():
    clock = Clock()
    factory = factory_on(clock, max_handshakes=2, handshake_seconds=30.0)
    (_, t1), (_, t2) = connect(factory, 1), connect(factory, 2)
    clock.advance(TerminalFactory.EVICT_AFTER_SECONDS)
    _, t3 = connect(factory, 3)  # pool full, the oldest has waited long enough: it goes
    assert t1.disconnecting and not t2.disconnecting
    _, t4 = connect(factory, 4)
    assert t2.disconnecting
    refused = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5))  # both waiters are young
    assert isinstance(refused, Refused)
    assert not t3.disconnecting and not t4.disconnecting
    assert len(factory.handshaking) == 2
    assert [r["outcome"] for r in events(factory, "HANDSHAKE DROPPED FOR A NEWER CONNECTION")] == ["1"]
    assert [r["outcome"] for r in events(factory, "CONNECTION REFUSED, HANDSHAKE POOL FULL")] == ["1"]


def test_unidentified_connections_do_not_use_up_max_connections():
    clock = Clock()
    factory = factory_on(clock, max_connections=1, max_handshakes=10)
    protos = [connect(factory, port)[0] for port in range(10)]
    assert all(isinstance(p, TerminalProtocol) for p in protos)
    factory.admit_terminal(protos[0], "T0100001")
    assert factory.terminals == {protos[0]} and len(factory.handshaking) == 9
    factory.switch.hub.sessions["T0100001"] = object()  # the hub counts identified terminals in all
    with pytest.raises(Reject, match=r"\.21\. SWITCH AT ITS LIMIT OF 1 TERMINAL CONNECTIONS"):
        factory.admit_terminal(protos[1], "T0200001")


def test_the_address_limit_pushes_out_a_stale_handshake_from_that_address():
    clock = Clock()
    factory = factory_on(clock, max_connections_per_address=2, handshake_seconds=30.0)
    (_, other), (_, t1) = connect(factory, 1, host="10.0.0.9"), connect(factory, 1)
    factory.admit_terminal(connect(factory, 2)[0], "T0100001")  # identified: never pushed out
    clock.advance(TerminalFactory.EVICT_AFTER_SECONDS)
    _, t3 = connect(factory, 3)
    assert t1.disconnecting and not other.disconnecting and not t3.disconnecting
    assert isinstance(factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4)), Refused)  # t3 is young
    assert factory.connections["127.0.0.1"] == 2


def test_drops_are_journaled_once_per_reason_and_period():
    clock = Clock()
    factory = factory_on(clock, max_connections_per_address=1)
    connect(factory, 1)
    for port in range(2, 302):
        assert isinstance(factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port)), Refused)
    assert [r["outcome"] for r in events(factory, "CONNECTION REFUSED, ADDRESS LIMIT")] == ["1"]
    clock.advance(DropReport.PERIOD)
    records = events(factory, "CONNECTION REFUSED, ADDRESS LIMIT")
    assert [r["outcome"] for r in records] == ["1", "299"] and "127.0.0.1:301" in records[1]["text"]
    clock.advance(DropReport.PERIOD)  # a quiet period: nothing more, and the timer stops
    assert len(events(factory, "CONNECTION REFUSED, ADDRESS LIMIT")) == 2
    clock.advance(DropReport.PERIOD)
    assert factory.drops.call is None
    for port in range(400, 404):  # the first pushes out the (now stale) first handshake
        factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
    factory.doStop()  # the listener stops: the period's count is journaled, not lost
    assert [r["outcome"] for r in events(factory, "CONNECTION REFUSED, ADDRESS LIMIT")] == ["1", "299", "1", "2"]
    assert [r["outcome"] for r in events(factory, "HANDSHAKE DROPPED FOR A NEWER CONNECTION")] == ["1"]
    assert factory.drops.call is None


def test_bucket_rate_and_burst():
    bucket = Bucket(rate=2.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.4) is False  # 0.8 of a token
    assert bucket.take(100.5) is True
    assert [bucket.take(200.0) for _ in range(4)] == [True, True, True, False]  # never more than the burst
    assert all(Bucket(rate=0, burst=1, now=0).take(0) for _ in range(1000))  # 0 is no limit


@pytest.mark.parametrize("text, shown", [
    ("SON.OR9990100.OPR/OP010001.PWD/LemsDemo#2026", "SON.OR9990100.OPR/OP010001.PWD/*"),
    ("son.or9990100.opr/op010001.pwd/Secret#1.otp/123456", "son.or9990100.opr/op010001.PWD/*.OTP/*"),
    ("QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101", "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"),
])
def test_refusals_echo_no_secret(text, shown):
    assert mask(text) == shown


def test_limits_are_checked_when_loaded():
    from lems.base.conf import ConfError, Settings
    from test_conf import REPO, demo_conf

    raw = demo_conf()
    raw["limits"]["max_held_frames"] = 0
    with pytest.raises(ConfError, match=r"\[limits\] max_held_frames must be a whole number, 1 or more"):
        Settings.from_dict(REPO, raw)
    limits = Settings.from_dict(REPO, demo_conf()).limits
    assert (limits.handshake_seconds, limits.max_handshakes, limits.max_held_frames) == (5.0, 256, 256)
    assert (limits.inputs_per_second, limits.input_burst) == (20.0, 200)
    assert (limits.signons_per_second, limits.signon_burst) == (1.0, 10)


def identified(clock: Clock, busy: bool, **limits):
    """A factory whose stand-in switch notes each input it receives, and one connection with a
    stand-in session; returns (factory, protocol, transport, inputs the switch received)."""
    from lems.base.clock import FakeClock
    from lems.core.switch import Switch

    factory = factory_on(clock, **limits)
    switch = factory.switch
    switch.clock, switch.peek_key = FakeClock(), Switch.peek_key
    handled: list = []
    switch.receive = lambda session, event: handled.append(event) or []
    proto, transport = connect(factory, 1)
    proto.session = SimpleNamespace(busy=busy, closed=False, operator=None, id="s1", remote="127.0.0.1:1",
                                    terminal=SimpleNamespace(id="T0100001", ori="OR9990100"),
                                    number=lambda terminal_id: 7)
    return factory, proto, transport, handled


def heartbeats(count: int) -> bytes:
    from lems.wire.framing import StxFramer
    from lems.wire.headers import input_bytes

    return b"".join(StxFramer.encode(input_bytes(f"R{i:09d}", "", "HBT")) for i in range(count))


def test_held_frames_pause_reading_and_drain_a_slice_per_turn():
    """A connection waiting on a password check: its frames are held up to the cap, reading
    pauses, and once it is free they are handled DRAIN_SLICE per reactor turn, then reading resumes."""
    clock = Clock()
    factory, proto, transport, handled = identified(clock, True, max_held_frames=100, inputs_per_second=0)
    proto.dataReceived(heartbeats(300))
    assert len(proto.held) == 300 and transport.producerState == "paused" and not handled
    proto.session.busy = False
    proto._drain()
    assert len(handled) == TerminalProtocol.DRAIN_SLICE and transport.producerState == "paused"
    while proto.held:
        clock.advance(0)
    assert len(handled) == 300 and transport.producerState == "producing"


def test_over_the_input_rate_reading_pauses_for_a_while():
    """Inputs over the rate are all answered, then the terminal is not read for OVER_RATE_PAUSE."""
    clock = Clock()
    factory, proto, transport, handled = identified(clock, False, inputs_per_second=1.0, input_burst=2)
    proto.dataReceived(heartbeats(5))
    assert len(handled) == 2 and not proto.held  # two admitted, three answered .21. by the link
    assert transport.producerState == "paused"
    assert [r["ref"] for r in events(factory, "INPUT RATE EXCEEDED")] == ["R000000002"]
    clock.advance(TerminalProtocol.OVER_RATE_PAUSE)
    assert transport.producerState == "producing"
