"""The terminal link: Twisted protocol and factory over mutual TLS.

The only layer between the socket and the sans-IO session.  It reads the
terminal's identity from its certificate once the handshake completes, feeds
framing events to the session and carries out the session's actions:

* replies are queued in the ``Outbox`` and written after the store commits, once
  per reactor turn (group commit: the reply never leaves before its journal
  record and state are durable);
* a terminal that does not read its replies is back-pressured: when its
  transport's buffer fills, the switch stops reading from it; past
  ``write_hard_limit`` buffered bytes it is disconnected;
* sign-on password checks (scrypt) run in the reactor's thread pool, at most one
  per connection at a time (the session is ``busy`` until its answer);
* what a connection sends while it waits is held, up to ``max_held_frames``;
  at the cap the switch stops reading it until the held frames are answered, and
  it answers at most ``DRAIN_SLICE`` of them per reactor turn, so one connection
  never has the event loop to itself;
* each terminal's inputs and sign-on attempts go through token buckets on the
  switch clock (``Limiter``); an input over its bucket is answered with one
  ``E`` frame and not processed, and the journal gets one record per burst of
  such refusals rather than one per frame (docs/SECURITY.md, "Connections");
* a connection must finish its TLS handshake within ``handshake_seconds``, and
  unidentified connections have a pool of their own (``max_handshakes``) that
  cannot use up the identified terminals' ``max_connections``.
"""

from __future__ import annotations

import collections
import os
import weakref
from typing import Any, Optional

import structlog
from twisted.internet import defer, interfaces, protocol, threads
from twisted.python import failure
from zope.interface import implementer

from lems.base import credentials
from lems.wire import framing, secrets
from lems.net import pki
from lems.base.errors import Reject
from lems.wire.headers import INPUT_HEADER_LEN, HeaderError, Input, output_bytes
from lems.base.clock import stamp
from lems.base.events import CheckPassword, Close, Send
from lems.core.session import Session

# Password checks (scrypt, ~0.35 s and 128 MiB each) running at once in the thread pool,
# whatever the number of connections signing on: the cores they can use, not more, so
# a crowd of sign-ons costs time, never the machine's memory.
PASSWORD_CHECKS = defer.DeferredSemaphore(max(2, os.cpu_count() or 2))


class Bucket:
    """A token bucket: ``rate`` tokens a second up to ``burst``, on a monotonic clock's seconds.

    ``rate`` 0 is no limit.  ``refused`` counts the inputs refused since the bucket
    last admitted one (the burst being refused), so the journal can say it once.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = self.burst
        self.stamp = now
        self.refused = 0
        self.first_ref = ""

    def take(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Limiter:
    """The input and sign-on buckets of every terminal of one switch.

    One per switch, shared by all its listeners, keyed by terminal id: a terminal
    that reconnects, or moves to the other listener, keeps its buckets.
    """

    _by_switch: "weakref.WeakKeyDictionary[Any, Limiter]" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, str], Bucket] = {}

    @classmethod
    def of(cls, switch: Any) -> "Limiter":
        limiter = cls._by_switch.get(switch)
        if limiter is None:
            limiter = cls._by_switch[switch] = cls()
        return limiter

    def bucket(self, terminal_id: str, kind: str, rate: float, burst: int, now: float) -> Bucket:
        bucket = self.buckets.get((terminal_id, kind))
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self.buckets[(terminal_id, kind)] = Bucket(rate, burst, now)
        return bucket


class Outbox:
    """Writes held until the turn's transaction commits (DESIGN.md durability rule)."""

    def __init__(self, store: Any, reactor: Any, capture: Any = None) -> None:
        self.store = store
        self.reactor = reactor
        self.capture = capture  # lems.wire.capture.Capture when `lems serve --capture` records traffic
        self.pending: list[tuple["TerminalProtocol", Optional[bytes], str]] = []
        self.scheduled = False

    def put(self, proto: "TerminalProtocol", payload: Optional[bytes], close_reason: str = "") -> None:
        self.pending.append((proto, payload, close_reason))
        if not self.scheduled:
            self.scheduled = True
            self.reactor.callLater(0, self.flush)

    def commit_soon(self) -> None:
        """Commit at the end of this turn although no frame is due (a journal record outside a session)."""
        if not self.scheduled:
            self.scheduled = True
            self.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        self.store.commit()
        pending, self.pending = self.pending, []
        capture = self.capture
        for proto, payload, reason in pending:
            if payload is not None:
                if capture is not None and proto.session is not None:
                    capture.outbound(proto.session.terminal.id, payload)
                proto.write_payload(payload)
            else:
                proto.hang_up(reason)
        if capture is not None:
            capture.flush()  # once per turn, not per frame


@implementer(interfaces.IHandshakeListener, interfaces.IPushProducer)
class TerminalProtocol(protocol.Protocol):
    # Held frames answered per reactor turn before the loop serves other connections
    # (like twisted.protocols.basic's limits, a class attribute).
    DRAIN_SLICE = 64
    # After refusing an input over the terminal's input rate the switch answers what it
    # has already read, then reads nothing more from that terminal for this many seconds
    # (reactor clock): a flood is slowed by TCP instead of being answered at wire speed.
    OVER_RATE_PAUSE = 1.0

    def __init__(self, factory: "TerminalFactory", remote: str) -> None:
        self.factory = factory
        self.remote = remote
        limits = factory.switch.settings.limits
        self.framer = framing.FRAMERS[factory.framing](limits.max_payload, limits.max_garbage)
        self.session: Optional[Session] = None
        # Frames read but not yet handled: at most max_held_frames plus one read's worth
        # (reading stops at the cap and starts again once they are answered).
        self.held: collections.deque[framing.Event] = collections.deque()
        self.max_held = limits.max_held_frames
        self.log = structlog.get_logger("lems.net.link").bind(remote=remote, listener=factory.name)
        self.closing = False
        self.paused = False  # our writes are backed up: we stopped reading
        self.held_full = False  # too much input held: we stopped reading
        self.reading_paused = False  # what we last told the transport
        self.buffered_while_paused = 0
        self.drain_call: Any = None
        self.cool_call: Any = None  # reading stopped after an input over the rate
        self.handshake_call: Any = None
        self.accepted_at = factory.reactor.seconds()
        self.identified = False  # left the handshake pool with a session

    # -- connection life ---------------------------------------------------------

    def connectionMade(self) -> None:
        # Told when the transport's write buffer fills (pauseProducing) and drains.
        self.transport.registerProducer(self, True)
        seconds = self.factory.switch.settings.limits.handshake_seconds
        if seconds > 0:
            self.handshake_call = self.factory.reactor.callLater(seconds, self._handshake_timeout)

    def _handshake_timeout(self) -> None:
        self.handshake_call = None
        if self.session is None and self.transport is not None:
            self.factory.dropped("HANDSHAKE TIMEOUT", self.remote)
            self.closing = True
            self.transport.abortConnection()

    def handshakeCompleted(self) -> None:
        if self.handshake_call is not None and self.handshake_call.active():
            self.handshake_call.cancel()
        self.handshake_call = None
        switch = self.factory.switch
        fingerprint = pki.peer_fingerprint(self.transport)
        try:
            terminal = switch.identify(fingerprint)
            self.factory.admit_terminal(self, terminal.id)
        except Reject as reject:
            self.factory.left_pool(self)
            self.log.warning("terminal refused", code=reject.code, reason=reject.reason, fingerprint=fingerprint)
            switch.audit("security", None, event="TERMINAL REFUSED", remote=self.remote, outcome=reject.code,
                         text=f"{reject.reason} FINGERPRINT {fingerprint}")
            # An unidentified peer has no output sequence of its own: its one frame is 00001.
            payload = output_bytes(1, "", "E", stamp(switch.clock.now()), reject.text())
            self.factory.outbox.put(self, payload)
            self.factory.outbox.put(self, None, "terminal refused")
            return
        self.session = switch.new_session(terminal, self.remote)
        self.log = self.log.bind(terminal=terminal.id, ori=terminal.ori, session=self.session.id)
        switch.hub.attach(self.session, self.act)
        self.log.info("terminal connected")
        self.act(switch.start(self.session))
        self.factory.after_start(self.session)

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        events = self.framer.feed(data)
        if self.session is None:
            return  # application data cannot precede the handshake; ignore defensively
        if self.factory.outbox.capture is not None:
            self.factory.outbox.capture.inbound(self.session.terminal.id, events)
        self.held.extend(events)
        if self.drain_call is None:
            self._drain()
        else:
            self._update_reading()  # a drain is already due this turn

    def _drain(self) -> None:
        """Handle held frames in order while no password check is outstanding, a slice per turn."""
        self.drain_call = None
        handled = 0
        while self.held and self.session is not None and not self.session.busy and not self.closing:
            if handled >= self.DRAIN_SLICE:
                self.drain_call = self.factory.reactor.callLater(0, self._drain)
                break
            handled += 1
            self.act(self._handle(self.held.popleft()))
        self._update_reading()

    def _update_reading(self) -> None:
        """Read from the terminal unless its replies are backed up or too much of its input is held."""
        if len(self.held) >= self.max_held:
            self.held_full = True
        elif not self.held:
            self.held_full = False
        want = self.paused or self.held_full or self.cool_call is not None
        if want != self.reading_paused and self.transport is not None:
            self.reading_paused = want
            if want:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    # -- rates ---------------------------------------------------------------------

    def _handle(self, event: framing.Event) -> list:
        """One framing event: through the terminal's buckets, then to the switch."""
        session = self.session
        switch = self.factory.switch
        if isinstance(event, framing.Overrun) or session is None or session.closed:
            return switch.receive(session, event) if session is not None else []
        ref, text = _peek(event)
        limits = switch.settings.limits
        now = switch.clock.monotonic()
        limiter = Limiter.of(switch)
        inputs = limiter.bucket(session.terminal.id, "INPUT", limits.inputs_per_second, limits.input_burst, now)
        if not inputs.take(now):
            if self.cool_call is None and self.OVER_RATE_PAUSE > 0:
                self.cool_call = self.factory.reactor.callLater(self.OVER_RATE_PAUSE, self._cooled)
            return self._over(inputs, "INPUT", ref, text, Reject(
                ".21.", f"TERMINAL {session.terminal.id} OVER ITS INPUT RATE OF {limits.inputs_per_second:g} "
                        "PER SECOND - INPUT NOT PROCESSED, SEND AGAIN LATER"))
        self._burst_ended(inputs, "INPUT")
        if switch.peek_key(text) == "SON":
            signons = limiter.bucket(session.terminal.id, "SIGN-ON", limits.signons_per_second,
                                     limits.signon_burst, now)
            if not signons.take(now):
                return self._over(signons, "SIGN-ON", ref, text, Reject(
                    ".20.", f"SIGN-ON ATTEMPTS OVER {limits.signons_per_second:g} PER SECOND - NOT CHECKED, "
                            "SIGN ON AGAIN LATER"))
            self._burst_ended(signons, "SIGN-ON")
        return switch.receive(session, event)

    def _cooled(self) -> None:
        self.cool_call = None
        self._update_reading()

    def _over(self, bucket: Bucket, kind: str, ref: str, text: str, reject: Reject) -> list:
        """One E frame for an input over its bucket: numbered, not journaled frame by frame.

        The first refusal of a burst is journaled (and logged); the burst's count is
        journaled when it ends (``_burst_ended``), so a flood costs the journal two
        records, not one per frame.
        """
        session = self.session
        if bucket.refused == 0:
            bucket.first_ref = ref
            self.factory.switch.audit("security", session, event=f"{kind} RATE EXCEEDED", ref=ref,
                                      outcome=reject.code, text=reject.reason)
            self.log.warning("rate exceeded", kind=kind.lower(), code=reject.code)
        bucket.refused += 1
        reject.with_original(secrets.mask(text))
        osn = session.number(session.terminal.id)
        payload = output_bytes(osn, ref, "E", stamp(self.factory.switch.clock.now()), reject.text())
        return [Send(payload, osn, "E")]

    def _burst_ended(self, bucket: Bucket, kind: str, session: Optional[Session] = None) -> None:
        if bucket.refused:
            count, bucket.refused = bucket.refused, 0
            self.factory.switch.audit("security", session or self.session, event=f"{kind} RATE BURST ENDED",
                                      ref=bucket.first_ref, outcome=str(count),
                                      text=f"{count} INPUT(S) REFUSED OVER THE {kind} RATE")

    def connectionLost(self, reason: failure.Failure = protocol.connectionDone) -> None:
        for call in (self.handshake_call, self.drain_call, self.cool_call):
            if call is not None and call.active():
                call.cancel()
        self.handshake_call = self.drain_call = self.cool_call = None
        self.factory.lost(self)
        if self.session is not None:
            switch = self.factory.switch
            limiter = Limiter.of(switch)
            for kind in ("INPUT", "SIGN-ON"):
                bucket = limiter.buckets.get((self.session.terminal.id, kind))
                if bucket is not None:
                    self._burst_ended(bucket, kind, self.session)
            switch.hub.detach(self.session)
            if not self.session.closed:
                switch.audit("security", self.session, event="DISCONNECT", text=reason.getErrorMessage()[:100])
                self.session.hang_up("connection lost")
            self.factory.outbox.put(self, None, "")  # make sure the turn commits
            self.log.info("terminal disconnected", reason=reason.getErrorMessage())
        self.held.clear()

    # -- actions from the session ---------------------------------------------------

    def act(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.factory.outbox.put(self, action.payload)
            elif isinstance(action, Close):
                self.closing = True
                self.factory.outbox.put(self, None, action.reason)
            elif isinstance(action, CheckPassword):
                self._check_password(action)

    def _check_password(self, check: CheckPassword) -> None:
        # The session is busy until done(): _drain hands it nothing more, so one check per connection.
        session = self.session
        reactor = self.factory.reactor
        d = PASSWORD_CHECKS.run(threads.deferToThreadPool, reactor, reactor.getThreadPool(),
                                credentials.verify_password, check.password, check.stored)

        def done(ok: bool) -> None:
            if session is self.session:
                self.act(self.factory.switch.signon_checked(session, check.token, bool(ok)))
                if self.drain_call is None:
                    self._drain()

        d.addCallback(done)
        d.addErrback(lambda f: (self.log.error("password check failed", error=f.getErrorMessage()), done(False)))

    # -- writing ---------------------------------------------------------------------

    def write_payload(self, payload: bytes) -> None:
        if self.transport is None or not self.transport.connected:
            return
        data = self.factory.encode(payload)
        if self.paused:
            self.buffered_while_paused += len(data)
            if self.buffered_while_paused > self.factory.switch.settings.limits.write_hard_limit:
                self.log.warning("terminal not reading; disconnected", buffered=self.buffered_while_paused)
                if self.session is not None:
                    self.factory.switch.audit("security", self.session, event="SLOW READER DISCONNECTED")
                self.transport.abortConnection()
                return
        self.transport.write(data)

    def hang_up(self, reason: str) -> None:
        if reason and self.transport is not None and self.transport.connected:
            # A registered producer holds loseConnection back until it unregisters.
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    # IPushProducer: the transport tells us when our replies are backing up.
    def pauseProducing(self) -> None:
        if not self.paused:
            self.paused = True
            self.buffered_while_paused = 0
            self._update_reading()  # stop reading this terminal's input

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            self._update_reading()

    def stopProducing(self) -> None:
        self.closing = True


def _peek(event: framing.Event) -> tuple[str, str]:
    """REF and text of an input, as far as they can be read, for a refusal."""
    if isinstance(event, framing.FrameError):  # the REF the switch itself would give back
        return event.ref, event.original.decode("ascii", "replace")
    payload = event.payload  # type: ignore[union-attr]
    if len(payload) >= INPUT_HEADER_LEN:
        try:
            inp = Input.from_wire(payload)
            return inp.ref, inp.text
        except (HeaderError, ValueError):
            pass
    return framing.ref_of(payload), payload.decode("ascii", "replace")


class Refused(protocol.Protocol):
    """A connection over a limit: dropped before the TLS handshake.

    (Returning None from buildProtocol would leave the TLS wrapper without a
    protocol to tell when the socket closes.)
    """

    def connectionMade(self) -> None:
        self.transport.abortConnection()


class DropReport:
    """Connections dropped before identification, journaled and logged without flooding either.

    The first drop for a reason is journaled at once; further drops for that reason
    within the next ``PERIOD`` seconds (reactor clock) are counted and journaled as
    one record, with the count, when the period ends: at most one record per reason
    a period, however many sockets an attacker opens.
    """

    PERIOD = 60.0

    def __init__(self, factory: "TerminalFactory") -> None:
        self.factory = factory
        self.counts: collections.Counter[str] = collections.Counter()
        self.remotes: dict[str, str] = {}
        self.quiet: set[str] = set()  # reasons reported in the current period
        self.call: Any = None

    def dropped(self, reason: str, remote: str) -> None:
        self.counts[reason] += 1
        self.remotes[reason] = remote
        if reason not in self.quiet:
            self.quiet.add(reason)
            self._report([reason])
            if self.call is None:
                self.call = self.factory.reactor.callLater(self.PERIOD, self._period_end)

    def _period_end(self) -> None:
        self.call = None
        pending = [reason for reason in self.quiet if self.counts[reason]]
        self.quiet = set(pending)  # those that were still dropping start a new period
        self._report(pending)
        if pending:
            self.call = self.factory.reactor.callLater(self.PERIOD, self._period_end)

    def _report(self, reasons: list[str]) -> None:
        switch, log = self.factory.switch, structlog.get_logger("lems.net.link")
        for reason in sorted(reasons):
            count, remote = self.counts.pop(reason), self.remotes.pop(reason)
            text = f"{count} CONNECTION(S) DROPPED BEFORE IDENTIFICATION, LAST FROM {remote}"
            switch.audit("security", None, event=reason, remote=remote, outcome=str(count), text=text)
            log.warning("connections dropped", reason=reason.lower(), count=count, last=remote,
                        listener=self.factory.name)
        if reasons:
            self.factory.outbox.commit_soon()

    def stop(self) -> None:
        """The listener stops: what this period counted is journaled now, not lost."""
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        self._report([reason for reason in self.quiet if self.counts[reason]])
        self.quiet.clear()


class TerminalFactory(protocol.ServerFactory):
    """Counts connections in two pools: unidentified (handshaking, ``max_handshakes``,
    per listener) and identified terminals (``max_connections``, in all: the hub's
    sessions); ``max_connections_per_address`` counts both, per listener."""

    # A full handshake pool makes room for a new connection by dropping the one that
    # has waited longest, if it has waited this long (a real handshake takes milliseconds).
    EVICT_AFTER_SECONDS = 1.0

    def __init__(self, switch: Any, reactor: Any, outbox: Outbox, name: str, framing_name: str) -> None:
        self.switch = switch
        self.reactor = reactor
        self.outbox = outbox
        self.name = name
        self.framing = framing_name
        self.encode = framing.FRAMERS[framing_name].encode
        self.connections: dict[str, int] = collections.Counter()
        self.protocols: set[TerminalProtocol] = set()
        self.handshaking: dict[TerminalProtocol, None] = {}  # oldest first
        self.terminals: set[TerminalProtocol] = set()
        self.drops = DropReport(self)
        self.on_session_start: list = []

    @property
    def total(self) -> int:
        return len(self.protocols)

    def doStop(self) -> None:
        self.drops.stop()
        super().doStop()

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        limits = self.switch.settings.limits
        host = getattr(addr, "host", "?")
        remote = f"{host}:{getattr(addr, 'port', 0)}"
        # Over a limit, a new connection pushes out the oldest stale handshake counted
        # against that limit; with none to push out it is refused.
        if self.connections[host] >= limits.max_connections_per_address and not self._evict(host):
            self.dropped("CONNECTION REFUSED, ADDRESS LIMIT", remote)
            return Refused()
        if len(self.handshaking) >= limits.max_handshakes and not self._evict(None):
            self.dropped("CONNECTION REFUSED, HANDSHAKE POOL FULL", remote)
            return Refused()
        self.connections[host] += 1
        proto = TerminalProtocol(self, remote)
        self.protocols.add(proto)
        self.handshaking[proto] = None
        return proto

    def _evict(self, host: Optional[str]) -> bool:
        """Drop the longest-waiting handshake (from ``host``, or any) if it has waited
        EVICT_AFTER_SECONDS; False when there is none that old."""
        now = self.reactor.seconds()
        for proto in self.handshaking:  # oldest first
            if now - proto.accepted_at < self.EVICT_AFTER_SECONDS:
                return False
            if host is None or proto.remote.rsplit(":", 1)[0] == host:
                self.left_pool(proto)
                self.lost(proto)  # its place is free now; connectionLost finds it gone
                self.dropped("HANDSHAKE DROPPED FOR A NEWER CONNECTION", proto.remote)
                proto.closing = True
                if proto.transport is not None:
                    proto.transport.abortConnection()
                return True
        return False

    def dropped(self, reason: str, remote: str) -> None:
        self.drops.dropped(reason, remote)

    def left_pool(self, proto: TerminalProtocol) -> None:
        self.handshaking.pop(proto, None)

    def admit_terminal(self, proto: TerminalProtocol, terminal_id: str) -> None:
        """The handshake identified a terminal: into the identified pool, or a .21. when it is full
        (a terminal that is already connected may always replace its own session)."""
        self.left_pool(proto)
        limits = self.switch.settings.limits
        # The hub has every listener's sessions: max_connections is in all, not per listener.
        if len(self.switch.hub.sessions) >= limits.max_connections and not self.switch.hub.connected(terminal_id):
            raise Reject(".21.", f"SWITCH AT ITS LIMIT OF {limits.max_connections} TERMINAL CONNECTIONS - "
                                 "CONNECT AGAIN LATER")
        proto.identified = True
        self.terminals.add(proto)

    def lost(self, proto: TerminalProtocol) -> None:
        self.handshaking.pop(proto, None)
        self.terminals.discard(proto)
        if proto in self.protocols:
            self.protocols.discard(proto)
            host = proto.remote.rsplit(":", 1)[0]
            self.connections[host] -= 1
            if self.connections[host] <= 0:
                del self.connections[host]

    def after_start(self, session: Session) -> None:
        for hook in self.on_session_start:
            hook(session)
