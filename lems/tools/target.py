"""A switch to connect terminals to, over mutual TLS on the Twisted reactor.

``lems replay`` and the ``lems bench`` load generator both drive many
terminals from one reactor: ``Target`` says where the switch is and which files
make a terminal's TLS identity, ``Wire`` is one terminal's connection (input
frames out, parsed output frames in).  The blocking client for people and
scripts is ``lems.tools.client``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import attrs
from twisted.internet import defer, interfaces, protocol
from zope.interface import implementer

from lems.wire import framing
from lems.wire.headers import HeaderError, Output, input_bytes


@implementer(interfaces.IHandshakeListener)
class Wire(protocol.Protocol):
    """A terminal's connection: frames out, parsed output frames to ``on_frame``.

    ``ready`` fires with the protocol once the TLS handshake is done, or fails
    with the reason the connection could not be made.  A frame whose header is
    not an output header goes to ``on_bad(payload, reason)``; without it, the
    ``HeaderError`` drops the connection (Twisted logs it).
    """

    def __init__(self, framing_name: str, on_frame: Callable[[Output], None],
                 on_lost: Optional[Callable[[Any], None]] = None,
                 on_bad: Optional[Callable[[bytes, str], None]] = None,
                 parse: Callable[[bytes], Any] = Output.from_wire) -> None:
        self.framer = framing.FRAMERS[framing_name](max_payload=1 << 20, max_garbage=1 << 30)
        self.encode = framing.FRAMERS[framing_name].encode
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.on_bad = on_bad
        self.parse = parse  # the bench's pure echo sends input frames back: it parses those
        self.ready: defer.Deferred = defer.Deferred()
        self.open = False

    def handshakeCompleted(self) -> None:
        self.open = True
        if not self.ready.called:
            self.ready.callback(self)

    def dataReceived(self, data: bytes) -> None:
        for event in self.framer.feed(data):
            if isinstance(event, framing.Frame):
                try:
                    out = self.parse(event.payload)
                except HeaderError as exc:
                    if self.on_bad is None:
                        raise
                    self.on_bad(event.payload, str(exc))
                    continue
                self.on_frame(out)

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        self.open = False
        if not self.ready.called:
            self.ready.errback(reason)
        elif self.on_lost is not None:
            self.on_lost(reason)

    def send(self, ref: str, text: str, opr: str = "") -> None:
        self.transport.write(self.encode(input_bytes(ref, opr, text)))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()


class _WireFactory(protocol.ClientFactory):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def buildProtocol(self, addr: Any) -> Wire:
        return self.wire

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.wire.ready.called:
            self.wire.ready.errback(reason)


@attrs.frozen
class Target:
    """Where the switch is and which files make a terminal's TLS identity."""

    host: str
    port: int
    ca: Path
    cert_dir: Path
    framing: str = "stx"

    def context(self, terminal: str) -> Any:
        from lems.net.pki import client_context_from_paths

        cert = self.cert_dir / f"{terminal}.crt"
        if not cert.exists():
            raise FileNotFoundError(f"{cert}: no certificate for terminal {terminal}")
        return client_context_from_paths(self.ca, cert, self.cert_dir / f"{terminal}.key")

    def connect(self, reactor: Any, terminal: str, on_frame: Callable[[Output], None],
                on_lost: Optional[Callable[[Any], None]] = None, timeout: float = 10.0,
                on_bad: Optional[Callable[[bytes, str], None]] = None,
                parse: Callable[[bytes], Any] = Output.from_wire) -> defer.Deferred:
        """A Deferred that fires with a handshaken ``Wire`` for ``terminal``."""
        wire = Wire(self.framing, on_frame, on_lost, on_bad, parse)
        reactor.connectSSL(self.host, self.port, _WireFactory(wire), self.context(terminal), timeout=timeout)
        return wire.ready

    @classmethod
    def from_home(cls, home: Path, host: Optional[str] = None, port: Optional[int] = None,
                  framing_name: Optional[str] = None) -> "Target":
        """The home's first listener (or its first with ``framing_name``) and its PKI."""
        from lems.base.conf import Settings

        settings = Settings.load(Path(home))
        listeners = [lst for lst in settings.listeners if framing_name in (None, lst.framing)]
        if not listeners:
            raise ValueError(f"{home}: no listener with {framing_name} framing")
        chosen = listeners[0]
        # A running switch's bound address (var/run/listeners.json), else the configuration.
        from lems.base import running

        live_host, live_port = running.listener(settings.home, chosen.name) or (chosen.host, chosen.port)
        return cls(host or live_host, port or live_port, settings.pki_dir / "ca.crt",
                   settings.pki_dir / "terminals", chosen.framing)
