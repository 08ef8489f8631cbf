"""Wiring: build a switch from a home and put it on the network.

``Service`` is a twisted.application MultiService around the sans-IO switch:

    Service
      one SSLServer per terminal listener (conf/ [[listener]])
      terminal sessions: on stop, closes every session with a notice and hangs up
      console: the administrators' SSH console (lems.net.console_server)
      dealer: the firearms dealers' HTTPS interface and portal (lems.net.dealer_web, [dealer])
      tick: a TimerService calling ``switch.tick()`` every second

Stopping the tree stops the children in the reverse order (tick, console,
sessions, listeners); once all are down the switch journals SWITCH STOP and the
store closes.  ``lems serve`` runs one until SIGINT or SIGTERM; the tests start
one on free loopback ports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import structlog
from twisted.application import internet, service
from twisted.internet import defer

from lems.base import running
from lems.base.clock import SystemClock
from lems.base.conf import Settings
from lems.core.build import build_switch
from lems.net import pki as pki_mod
from lems.net.link import Outbox, TerminalFactory
from lems.store import Store, switch_time
from lems.wire.capture import Capture

TICK_SECONDS = 1.0


class TerminalSessions(service.Service):
    """On stop, every live terminal session is closed with a notice and every terminal connection hung up."""

    name = "terminal sessions"

    def __init__(self, owner: "Service") -> None:
        self.owner = owner

    def stopService(self) -> None:
        super().stopService()
        owner = self.owner
        owner.switch.close_sessions("switch stopping", ("S", "SWITCH SHUTTING DOWN"))
        owner.outbox.flush()
        for factory in owner.factories:
            for proto in list(factory.protocols):
                if proto.transport is not None:
                    proto.transport.loseConnection()


def _bound_port(server: internet.SSLServer) -> int:
    # twisted.application.internet keeps a started server's port to itself; this is the one place that reads it.
    return server._port.getHost().port


class Service(service.MultiService):
    def __init__(self, home: Path, clock: Any = None, reactor: Any = None, port: Optional[int] = None,
                 console_port: Optional[int] = None, capture: Optional[Path] = None,
                 host: Optional[str] = None, dealer_port: Optional[int] = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.home = Path(home).resolve()
        self.settings = Settings.load(self.home)
        self.port_override = port
        self.host_override = host
        self.console_port = console_port
        self.dealer_port_override = dealer_port
        self.dealer: Optional[internet.SSLServer] = None  # the dealer listener once started
        self.dealer_port: Optional[int] = None
        self.capture = capture
        self.log = structlog.get_logger("lems.net.service")
        # Certificates are checked by OpenSSL against the system's time, never the emulated one.
        self.pki = pki_mod.Pki(self.settings.pki_dir, clock=clock or SystemClock())
        if not self.pki.exists():
            raise FileNotFoundError(f"{self.settings.pki_dir}: no PKI in this home (run `lems init DIR` for a new home)")
        self.store = Store.open(self.settings.store_path)
        # The switch clock: ``clock`` (the system clock), or on a home whose [clock] is adjustable (or
        # was, and moved) an EmulatedClock around it that resumes the offset kept in the store.
        self.clock = switch_time.switch_clock(self.store.conn, self.settings.clock.adjustable,
                                              base=clock or SystemClock())
        self.switch = build_switch(self.home, self.settings, self.store, self.clock, self.log)
        self.outbox = Outbox(self.store, reactor, capture=Capture.open(capture) if capture else None)
        self.factories: list[TerminalFactory] = []
        self.listeners: dict[str, internet.SSLServer] = {}
        self.console: Any = None  # the ConsoleService once started; .port is its bound port

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> dict[str, int]:
        """Listen on every configured listener and the console; returns listener name -> bound port."""
        from lems.net.console_server import ConsoleService  # conch is only needed by a switch that listens

        context = pki_mod.server_context_factory(self.pki)
        for i, listener in enumerate(self.settings.listeners):
            factory = TerminalFactory(self.switch, self.reactor, self.outbox, listener.name, listener.framing)
            factory.on_session_start.append(self.switch.session_started)  # queued traffic goes out
            self.factories.append(factory)
            port = listener.port
            if self.port_override is not None:
                # --port moves the first listener; the others move with it (port+1, ...) unless 0.
                port = self.port_override + i if self.port_override else 0
            server = internet.SSLServer(port, factory, context, interface=self.host_override or listener.host,
                                        reactor=self.reactor)
            server.setServiceParent(self)
            self.listeners[listener.name] = server
        TerminalSessions(self).setServiceParent(self)
        self.console = ConsoleService(self, *self._console_address())
        self.console.setServiceParent(self)
        self._dealer_listener()
        self.startService()
        bound = {name: _bound_port(server) for name, server in self.listeners.items()}
        if self.dealer is not None:
            self.dealer_port = _bound_port(self.dealer)
        self.switch.audit("security", None, event="SWITCH START", text=" ".join(
            f"{k}:{v}" for k, v in {**bound, **({"dealer": self.dealer_port} if self.dealer_port else {})}.items()))
        self.store.commit()
        # Last, so SWITCH START is journaled before the first tick (a TimerService ticks as it starts).
        ticker = internet.TimerService(TICK_SECONDS, self.tick)
        ticker.clock = self.reactor
        ticker.setName("tick")
        ticker.setServiceParent(self)
        if self.dealer_url is not None:
            self.web.server_url = self.dealer_url
        self.log.info("switch listening", home=str(self.home), dealer=self.dealer_port, **bound)
        self._announce(bound)
        return bound

    def _announce(self, bound: dict[str, int]) -> None:
        """var/run/listeners.json: where this switch listens, for the tools that take --home (lems.base.running)."""
        listeners = {lst.name: {"host": self.host_override or lst.host, "port": bound[lst.name],
                                "framing": lst.framing} for lst in self.settings.listeners if lst.name in bound}
        console = None
        if self.console is not None and self.console.port is not None:
            console = {"host": self.console.listen_on[1], "port": self.console.port}
        if self.dealer_port is not None:
            listeners["dealer"] = {"host": self.dealer_host, "port": self.dealer_port, "framing": "https"}
        self.running_instance = running.write(self.home, listeners, console)

    @property
    def dealer_host(self) -> str:
        return self.host_override or self.settings.dealer.host

    def _dealer_listener(self) -> None:
        """The dealers' HTTPS interface (PROTOCOL.md 10): --dealer-port, else [dealer] port; a switch
        whose terminal listeners are on free ports (``--port 0``) puts it on a free port too."""
        from lems.net import dealer_web

        port = self.dealer_port_override
        if port is None:
            port = 0 if self.port_override == 0 else self.settings.dealer.port
        host = self.dealer_host
        self.web = dealer_web.DealerInterface(self.switch)
        site = dealer_web.DealerSite(self.web, self.settings.dealer.max_body_bytes)
        self.dealer = internet.SSLServer(port, site, pki_mod.web_context_factory(self.pki), interface=host,
                                         reactor=self.reactor)
        self.dealer.setName("dealer")
        self.dealer.setServiceParent(self)

    @property
    def dealer_url(self) -> Optional[str]:
        if self.dealer_port is None:
            return None
        host = self.dealer_host
        return f"https://{'[' + host + ']' if ':' in host else host}:{self.dealer_port}"

    def _console_address(self) -> tuple[int, str]:
        """--console-port, else the [console] port; a switch whose terminal listeners were put on free
        ports (``--port 0``, the tests) gets a free console port too, never a fixed one."""
        port = self.console_port
        if port is None:
            port = 0 if self.port_override == 0 else self.settings.console_port
        return port, self.host_override or self.settings.console_host

    def tick(self) -> None:
        """Run every session's timers (the fake-clock tests call this directly)."""
        self.switch.tick()

    def stop(self) -> defer.Deferred:
        """Stop the tree (administrators first, then terminals, then listeners), then commit and close the store."""
        self.console = None

        def finish(_: Any) -> None:
            if getattr(self, "running_instance", None):
                running.remove(self.home, self.running_instance)
            self.switch.audit("security", None, event="SWITCH STOP")
            self.store.close()
            if self.outbox.capture is not None:
                self.outbox.capture.close()
            self.log.info("switch stopped")

        return defer.maybeDeferred(self.stopService).addCallback(finish)
