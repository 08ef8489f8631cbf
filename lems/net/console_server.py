"""The administrators' console over SSH (twisted.conch): the server side.

* Public-key authentication only, against the OpenSSH public keys in
  ``conf/admin_keys`` (lems.net.sshkeys), read at each attempt.  No password
  method is offered; there is no Python prompt, only the shell's commands.
* An interactive session (``ssh -p PORT admin@HOST``) gets line editing and
  history (``HistoricRecvLine``) and TAB completion from the shell.
  ``ssh ... admin@HOST status`` runs one command and exits 0, or 1 when the
  command was refused.
* Sign-in, sign-out and refused keys go to the audit journal (kind
  ``security``); the commands themselves are journaled by the shell
  (lems.admin.shell), which this module only puts a terminal in front of.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import structlog
from twisted.application import service
from twisted.conch import avatar, recvline
from twisted.conch import interfaces as conch_interfaces
from twisted.conch.insults import insults
from twisted.conch.ssh import factory, keys, session, transport
from twisted.cred import error as cred_error
from twisted.cred import portal
from twisted.internet import defer
from twisted.internet import error as net_error
from twisted.python import failure
from zope.interface import implementer

from lems.admin.operations import Admin
from lems.admin.shell import Console
from lems.net.sshkeys import AdminKeyChecker, ensure_host_key, read_admin_keys

log = structlog.get_logger("lems.net.console_server")

PROMPT = b"lems> "


class ConsoleProtocol(recvline.HistoricRecvLine):
    """Line editing, history and completion in front of a Console."""

    ps = (PROMPT, PROMPT)

    def __init__(self, console: Console, size: tuple[int, int] = (80, 24)) -> None:
        self.console = console
        self.width, self.height = size

    def connectionMade(self) -> None:
        super().connectionMade()
        self.keyHandlers[b"\x04"] = self.handle_EOF       # Ctrl-D
        self.keyHandlers[b"\x03"] = self.handle_INTERRUPT  # Ctrl-C

    def initializeScreen(self) -> None:
        # Unlike the base class, keep what is on the administrator's screen.
        name = self.console.switch.settings.name
        self._write_lines([f"{name} - ADMINISTRATORS' CONSOLE, signed in as {self.console.who}",
                           "Every command is recorded in the audit journal. Type help; TAB completes."])
        self.terminal.write(self.ps[self.pn])
        self.setInsertMode()

    def _write_lines(self, lines: list[str]) -> None:
        for text in lines:
            self.terminal.write(text.encode("ascii", "replace"))
            self.terminal.nextLine()

    def lineReceived(self, line: bytes) -> None:
        reply = self.console.execute(line.decode("ascii", "replace"))
        self._write_lines(reply.lines)
        if reply.close:
            self.end()
            return
        self.terminal.write(self.ps[self.pn])

    def end(self) -> None:
        """Close the session with exit status 0 (ssh reports 255 for a session that ends without one)."""
        self.terminal.transport.processEnded(failure.Failure(net_error.ProcessDone(None)))

    def terminalSize(self, width: int, height: int) -> None:
        # The base class clears the screen on every resize; only the size matters here.
        self.width, self.height = width, height

    def handle_TAB(self) -> None:
        before = b"".join(self.lineBuffer[:self.lineBufferIndex]).decode("ascii", "replace")
        word, options = self.console.complete(before)
        if not options:
            return
        shared = len(os.path.commonprefix([o.lower() for o in options]))
        replacement = options[0] + " " if len(options) == 1 else options[0][:shared]
        if len(options) == 1 or len(replacement) > len(word):
            if not replacement.startswith(word):
                # Typed in the other case: retype the word as the identifier is spelled.
                for _ in word:
                    self.handle_BACKSPACE()
                word = ""
            for ch in replacement[len(word):]:
                self.characterReceived(ch.encode("ascii"), False)
            return
        # Nothing more to add: show the choices and redraw the line as it was.
        self.terminal.nextLine()
        self._write_lines(["  ".join(options)])
        self.drawInputLine()
        behind = len(self.lineBuffer) - self.lineBufferIndex
        if behind:
            self.terminal.cursorBackward(behind)

    def handle_EOF(self) -> None:
        if not self.lineBuffer:
            self.terminal.nextLine()
            self.lineReceived(b"quit")

    def handle_INTERRUPT(self) -> None:
        self.lineBuffer, self.lineBufferIndex = [], 0
        self.terminal.write(b"^C")
        self.terminal.nextLine()
        self.terminal.write(self.ps[self.pn])


@implementer(conch_interfaces.ISession)
class AdminAvatar(avatar.ConchUser):
    """One signed-in administrator; each session channel is a shell or one command."""

    def __init__(self, server: "ConsoleService", who: str) -> None:
        super().__init__()
        self.server = server
        self.who = who
        self.size = (80, 24)
        self.shell: Optional[insults.ServerProtocol] = None
        self.channelLookup[b"session"] = session.SSHSession

    def _console(self, pp: Any) -> Console:
        peer = getattr(pp.getPeer(), "address", None)  # SSHTransportAddress wraps the TCP address
        remote = f"{peer.host}:{peer.port}" if hasattr(peer, "host") else ""
        return Console(Admin(self.server.switch, self.server.owner), self.who, remote)

    def getPty(self, term: bytes, window: tuple[int, ...], modes: Any) -> None:
        rows, cols = window[:2]
        self.size = (cols or 80, rows or 24)

    def openShell(self, pp: Any) -> None:
        self.shell = insults.ServerProtocol(ConsoleProtocol, self._console(pp), self.size)
        self.shell.makeConnection(pp)
        pp.makeConnection(session.wrapProtocol(self.shell))

    def execCommand(self, pp: Any, command: bytes) -> None:
        console = self._console(pp)

        def run() -> None:
            reply = console.execute(command.decode("ascii", "replace"))
            pp.write("".join(f"{line}\n" for line in reply.lines).encode("ascii", "replace"))
            ended = net_error.ProcessDone(None) if reply.ok else net_error.ProcessTerminated(exitCode=1)
            pp.processEnded(failure.Failure(ended))

        # After the channel has answered the exec request, not inside it.
        self.server.reactor.callLater(0, run)

    def windowChanged(self, window: tuple[int, ...]) -> None:
        if self.shell is not None and self.shell.terminalProtocol is not None:
            self.shell.terminalProtocol.terminalSize(window[1], window[0])

    def eofReceived(self) -> None:
        if self.shell is not None and self.shell.terminalProtocol is not None:
            self.shell.terminalProtocol.end()

    def closed(self) -> None:
        self.shell = None


@implementer(portal.IRealm)
class AdminRealm:
    def __init__(self, server: "ConsoleService") -> None:
        self.server = server

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> tuple:
        if conch_interfaces.IConchUser not in interfaces:
            # Only the SSH shell is offered: any other kind of avatar is a refused login.
            raise cred_error.UnauthorizedLogin("the console offers SSH sessions only")
        who = avatar_id  # the key's name in admin_keys (AdminKeyChecker)
        self.server.audit("CONSOLE SIGN-IN", who)
        return conch_interfaces.IConchUser, AdminAvatar(self.server, who), lambda: self.server.audit(
            "CONSOLE SIGN-OUT", who)


class _ServerTransport(transport.SSHServerTransport):
    def connectionMade(self) -> None:
        self.factory.server.connections.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        self.factory.server.lost(self)


class ConsoleFactory(factory.SSHFactory):
    protocol = _ServerTransport

    def __init__(self, server: "ConsoleService", host_key: keys.Key) -> None:
        self.server = server
        self.portal = portal.Portal(AdminRealm(server), [AdminKeyChecker(server.authorized_keys, server.refused)])
        self.publicKeys = {host_key.sshType(): host_key.public()}
        self.privateKeys = {host_key.sshType(): host_key}



class ConsoleService(service.Service):
    """The console listener of one switch Service, as a twisted.application service.

    Starting it listens on ``port`` (0: any free port); stopping it stops
    listening and hangs up every administrator, and fires when all are gone, so
    their sign-outs are journaled before the store closes.
    """

    name = "console"

    def __init__(self, owner: Any, port: int, host: str) -> None:
        self.owner = owner  # the switch Service: its switch, reactor, home, settings, and factories for Admin
        self.switch = owner.switch
        self.reactor = owner.reactor
        self.authorized_keys = owner.settings.authorized_keys
        self.listen_on = (port, host)
        self.connections: set[_ServerTransport] = set()
        self._waiting: dict[_ServerTransport, defer.Deferred] = {}
        self.listening: Any = None
        self.port: Optional[int] = None

    def startService(self) -> None:
        super().startService()
        port, host = self.listen_on
        host_key = keys.Key.fromFile(str(ensure_host_key(self.owner.home)))
        self.listening = self.reactor.listenTCP(port, ConsoleFactory(self, host_key), interface=host)
        self.port = self.listening.getHost().port
        if not read_admin_keys(self.authorized_keys):
            log.warning("no administrator key: nobody can sign in to the console", file=str(self.authorized_keys))
        log.info("console listening", port=self.port)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        done = [defer.maybeDeferred(self.listening.stopListening)] if self.listening is not None else []
        self.listening = None
        for conn in list(self.connections):
            self._waiting[conn] = d = defer.Deferred()
            done.append(d)
            conn.transport.loseConnection()
        return defer.DeferredList(done)

    def audit(self, event: str, who: str) -> None:
        # Upper case like every operator id, so `audit operator NAME` finds it.
        self.switch.audit("security", None, event=event, operator=who.upper())
        self.switch.store.commit()

    def refused(self, user: str, fingerprint: str) -> None:
        self.switch.audit("security", None, event="CONSOLE KEY REFUSED", outcome="REFUSED",
                          text=f"USER {user} KEY {fingerprint}")
        self.switch.store.commit()

    def lost(self, conn: _ServerTransport) -> None:
        self.connections.discard(conn)
        waiting = self._waiting.pop(conn, None)
        if waiting is not None:
            waiting.callback(None)
