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
* sign-on password checks (scrypt) run in the reactor's thread pool.
"""

from __future__ import annotations

import collections
from typing import Any, Optional

import structlog
from twisted.internet import interfaces, protocol, threads
from twisted.python import failure
from zope.interface import implementer

from lems.base import credentials
from lems.wire import framing
from lems.net import pki
from lems.base.errors import Reject
from lems.wire.headers import output_bytes
from lems.base.clock import stamp
from lems.base.events import CheckPassword, Close, Send
from lems.core.session import Session


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
    def __init__(self, factory: "TerminalFactory", remote: str) -> None:
        self.factory = factory
        self.remote = remote
        limits = factory.switch.settings.limits
        self.framer = framing.FRAMERS[factory.framing](limits.max_payload, limits.max_garbage)
        self.session: Optional[Session] = None
        self.held: collections.deque[framing.Event] = collections.deque()
        self.log = structlog.get_logger("lems.net.link").bind(remote=remote, listener=factory.name)
        self.closing = False
        self.paused = False  # our writes are backed up: we stopped reading
        self.buffered_while_paused = 0

    # -- connection life ---------------------------------------------------------

    def connectionMade(self) -> None:
        # Told when the transport's write buffer fills (pauseProducing) and drains.
        self.transport.registerProducer(self, True)

    def handshakeCompleted(self) -> None:
        switch = self.factory.switch
        fingerprint = pki.peer_fingerprint(self.transport)
        try:
            terminal = switch.identify(fingerprint)
        except Reject as reject:
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
        self._drain()

    def _drain(self) -> None:
        while self.held and self.session is not None and not self.session.busy and not self.closing:
            self.act(self.factory.switch.receive(self.session, self.held.popleft()))

    def connectionLost(self, reason: failure.Failure = protocol.connectionDone) -> None:
        self.factory.lost(self)
        if self.session is not None:
            switch = self.factory.switch
            switch.hub.detach(self.session)
            if not self.session.closed:
                switch.audit("security", self.session, event="DISCONNECT", text=reason.getErrorMessage()[:100])
                self.session.hang_up("connection lost")
            self.factory.outbox.put(self, None, "")  # make sure the turn commits
            self.log.info("terminal disconnected", reason=reason.getErrorMessage())

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
        session = self.session
        d = threads.deferToThreadPool(self.factory.reactor, self.factory.reactor.getThreadPool(),
                                      credentials.verify_password, check.password, check.stored)

        def done(ok: bool) -> None:
            if session is self.session:
                self.act(self.factory.switch.signon_checked(session, check.token, bool(ok)))
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
            self.transport.pauseProducing()  # stop reading this terminal's input

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.closing = True


class Refused(protocol.Protocol):
    """A connection over a limit: dropped before the TLS handshake.

    (Returning None from buildProtocol would leave the TLS wrapper without a
    protocol to tell when the socket closes.)
    """

    def connectionMade(self) -> None:
        self.transport.abortConnection()


class TerminalFactory(protocol.ServerFactory):
    def __init__(self, switch: Any, reactor: Any, outbox: Outbox, name: str, framing_name: str) -> None:
        self.switch = switch
        self.reactor = reactor
        self.outbox = outbox
        self.name = name
        self.framing = framing_name
        self.encode = framing.FRAMERS[framing_name].encode
        self.connections: dict[str, int] = collections.Counter()
        self.total = 0
        self.protocols: set[TerminalProtocol] = set()
        self.on_session_start: list = []

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        limits = self.switch.settings.limits
        host = getattr(addr, "host", "?")
        if self.total >= limits.max_connections or self.connections[host] >= limits.max_connections_per_address:
            # Refused before TLS: returning None closes the socket at once.
            structlog.get_logger("lems.net.link").warning("connection refused by limit", remote=host)
            return Refused()
        self.connections[host] += 1
        self.total += 1
        proto = TerminalProtocol(self, f"{host}:{getattr(addr, 'port', 0)}")
        self.protocols.add(proto)
        return proto

    def lost(self, proto: TerminalProtocol) -> None:
        if proto in self.protocols:
            self.protocols.discard(proto)
            host = proto.remote.rsplit(":", 1)[0]
            self.connections[host] -= 1
            self.total -= 1

    def after_start(self, session: Session) -> None:
        for hook in self.on_session_start:
            hook(session)
