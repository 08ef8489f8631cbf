"""Wiring: build a switch from a home and put it on the network.

``Service`` owns the reactor-facing pieces (listeners, the timer tick, the
outbox, later the console) around the sans-IO switch.  ``lems serve`` runs one
until SIGINT or SIGTERM; the tests start one on free loopback ports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import structlog
from twisted.internet import task

from lems.net import pki as pki_mod
from lems.base.clock import SystemClock
from lems.base.conf import Settings
from lems.core.build import build_switch
from lems.net.link import Outbox, TerminalFactory
from lems.store import Store

TICK_SECONDS = 1.0


class Service:
    def __init__(self, home: Path, clock: Any = None, reactor: Any = None, port: Optional[int] = None,
                 console_port: Optional[int] = None, capture: Optional[Path] = None,
                 host: Optional[str] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.home = Path(home).resolve()
        self.clock = clock or SystemClock()
        self.settings = Settings.load(self.home)
        self.port_override = port
        self.host_override = host
        self.console_port = console_port
        self.capture = capture
        self.log = structlog.get_logger("lems.net.service")
        self.pki = pki_mod.Pki(self.settings.pki_dir, clock=self.clock)
        if not self.pki.exists():
            raise FileNotFoundError(f"{self.settings.pki_dir}: no PKI in this home (run `lems init DIR` for a new home)")
        self.store = Store.open(self.settings.store_path)
        self.switch = build_switch(self.home, self.settings, self.store, self.clock, self.log)
        from lems.wire.capture import Capture
        self.outbox = Outbox(self.store, reactor, capture=Capture.open(capture) if capture else None)
        self.factories: list[TerminalFactory] = []
        self.ports: list[Any] = []
        self.ticker: Optional[task.LoopingCall] = None
        self.console: Any = None  # lems.net.console_server.ConsoleService once started; .port is its bound port

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> dict[str, int]:
        """Listen on every configured listener; returns name -> bound port."""
        bound = {}
        context = pki_mod.server_context_factory(self.pki)
        for i, listener in enumerate(self.settings.listeners):
            factory = TerminalFactory(self.switch, self.reactor, self.outbox, listener.name, listener.framing)
            port = listener.port
            if self.port_override is not None:
                # --port moves the first listener; the others move with it (port+1, ...) unless 0.
                port = self.port_override + i if self.port_override else 0
            listening = self.reactor.listenSSL(port, factory, context, interface=self.host_override or listener.host)
            self.factories.append(factory)
            factory.on_session_start.append(self.switch.session_started)  # queued traffic goes out
            self.ports.append(listening)
            bound[listener.name] = listening.getHost().port
        from lems.net.console_server import ConsoleService  # conch is only needed by a switch that listens
        port = self.console_port
        if port is None:
            # A service whose terminal listeners were put on free ports (--port 0, the tests) gets a free
            # console port too, never a fixed one.
            port = 0 if self.port_override == 0 else self.settings.console_port
        self.console = ConsoleService(self, port, self.host_override or self.settings.console_host)
        self.console.startService()
        self.ticker = task.LoopingCall(self.tick)
        self.ticker.clock = self.reactor
        self.ticker.start(TICK_SECONDS, now=False)
        self.switch.audit("security", None, event="SWITCH START", text=" ".join(f"{k}:{v}" for k, v in bound.items()))
        self.store.commit()
        self.log.info("switch listening", home=str(self.home), **bound)
        return bound

    def tick(self) -> None:
        """Run every session's timers (the fake-clock tests call this directly)."""
        self.switch.tick()

    def stop(self):
        """Stop listening, close every session, commit and close the store."""
        if self.ticker is not None and self.ticker.running:
            self.ticker.stop()
        # Administrators go first: their sign-out is journaled before the store closes.
        console_stopped = self.console.stopService() if self.console is not None else None
        self.console = None
        self.switch.close_sessions("switch stopping", ("S", "SWITCH SHUTTING DOWN"))
        self.outbox.flush()
        for factory in self.factories:
            for proto in list(factory.protocols):
                if proto.transport is not None:
                    proto.transport.loseConnection()
        from twisted.internet import defer
        stopped = [defer.maybeDeferred(p.stopListening) for p in self.ports]
        if console_stopped is not None:
            stopped.append(console_stopped)
        self.ports = []

        def finish(_: Any) -> None:
            self.switch.audit("security", None, event="SWITCH STOP")
            self.store.close()
            if self.outbox.capture is not None:
                self.outbox.capture.close()
            self.log.info("switch stopped")

        return defer.DeferredList(stopped).addCallback(finish)
