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
import struct
from collections import deque
from typing import Any, Callable, Optional

import structlog
from twisted.application import service
from twisted.conch import avatar, recvline
from twisted.conch import interfaces as conch_interfaces
from twisted.conch.insults import insults
from twisted.conch.ssh import common, connection, factory, keys, session, transport, userauth
from twisted.cred import error as cred_error
from twisted.cred import portal
from twisted.internet import defer
from twisted.internet import error as net_error
from twisted.python import failure
from zope.interface import implementer

from lems.admin.operations import Admin
from lems.admin.shell import Console
from lems.net.sshalgorithms import ModernAlgorithms
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

    def gotGlobalRequest(self, requestType: bytes, data: bytes) -> int:
        # tcpip-forward (ssh -R) and anything else global: a request failure, journaled.
        self.server.request_refused(self.who, requestType, _describe_request(requestType, data))
        return 0

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


def _describe_request(kind: bytes, data: bytes) -> str:
    """The addresses of a forwarding request, as far as they can be read: for the journal."""
    try:
        if kind in (b"direct-tcpip", b"forwarded-tcpip"):
            host, rest = common.getNS(data)
            (port,) = struct.unpack(">L", rest[:4])
            return f"{host.decode('ascii', 'replace')}:{port}"
        if kind in (b"tcpip-forward", b"cancel-tcpip-forward"):
            host, rest = common.getNS(data)
            (port,) = struct.unpack(">L", rest[:4])
            return f"{host.decode('ascii', 'replace') or '*'}:{port}"
    except (struct.error, ValueError, IndexError):
        return "unreadable"
    return ""


class ConsoleConnection(connection.SSHConnection):
    """Sessions only: any other channel (direct-tcpip from ``ssh -L``, x11, agent) is refused cleanly.

    Conch would refuse too, but from inside an exception handler that writes a
    traceback to the log; here the refusal is a CHANNEL_OPEN_FAILURE
    (administratively prohibited) and one journal record.
    """

    def ssh_CHANNEL_OPEN(self, packet: bytes) -> None:
        kind, rest = common.getNS(packet)
        avatar = getattr(self.transport, "avatar", None)
        if avatar is not None and kind in avatar.channelLookup:
            return super().ssh_CHANNEL_OPEN(packet)
        sender = struct.unpack(">L", rest[:4])[0] if len(rest) >= 4 else 0
        if avatar is not None:
            avatar.server.request_refused(avatar.who, kind, _describe_request(kind, rest[12:]))
        self.transport.sendPacket(
            connection.MSG_CHANNEL_OPEN_FAILURE,
            struct.pack(">2L", sender, connection.OPEN_ADMINISTRATIVELY_PROHIBITED)
            + common.NS(b"the console offers sessions only") + common.NS(b""))


class _ServerTransport(ModernAlgorithms, transport.SSHServerTransport):
    def connectionMade(self) -> None:
        self.factory.server.connections.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        self.factory.server.lost(self)


class AttemptLimiter:
    """At most ``limit`` connection attempts per address in any ``window`` seconds of ``now()`` (the reactor's clock).

    A sliding window over the attempts let in.  ``admit`` says whether this attempt
    may go on and, for a refusal, whether it is the first refusal of its run (the
    one worth journaling: a flood makes one journal record, not one per socket).
    """

    def __init__(self, limit: int, window: float, now: Callable[[], float]) -> None:
        self.limit, self.window, self.now = limit, window, now
        self._seen: dict[str, deque[float]] = {}
        self._refusing: set[str] = set()

    def admit(self, host: str) -> tuple[bool, bool]:
        now = self.now()
        if len(self._seen) > 1024:
            self._forget(now)
        times = self._seen.setdefault(host, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        allowed = len(times) < self.limit
        # Only the attempts let in count against the address: a refused attempt costs nothing to
        # repeat, and counting it would let a flood of refusals lock the address out for ever.
        if allowed:
            times.append(now)
            self._refusing.discard(host)
            return True, False
        first = host not in self._refusing
        self._refusing.add(host)
        return False, first

    def _forget(self, now: float) -> None:
        for host in [h for h, t in self._seen.items() if not t or t[-1] <= now - self.window]:
            del self._seen[host]
            self._refusing.discard(host)


class ConsoleFactory(factory.SSHFactory):
    protocol = _ServerTransport
    services = {b"ssh-userauth": userauth.SSHUserAuthServer, b"ssh-connection": ConsoleConnection}

    def __init__(self, server: "ConsoleService", host_key: keys.Key) -> None:
        self.server = server
        self.portal = portal.Portal(AdminRealm(server), [AdminKeyChecker(server.authorized_keys, server.refused)])
        self.publicKeys = {host_key.sshType(): host_key.public()}
        self.privateKeys = {host_key.sshType(): host_key}
        limits = server.limits
        self.limiter = AttemptLimiter(limits.attempts_per_address, limits.attempt_window_seconds,
                                      server.reactor.seconds)

    def buildProtocol(self, addr: Any) -> Optional[transport.SSHServerTransport]:
        host = getattr(addr, "host", str(addr))
        allowed, first = self.limiter.admit(host)
        if not allowed:
            # None: Twisted closes the socket before a byte of SSH is exchanged.
            if first:
                self.server.rate_limited(host)
            return None
        return super().buildProtocol(addr)



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
        self.limits = owner.settings.console_limits
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

    def rate_limited(self, host: str) -> None:
        limits = self.limits
        self.switch.audit("security", None, event="CONSOLE RATE LIMITED", outcome="REFUSED",
                          text=f"ADDRESS {host} OVER {limits.attempts_per_address} ATTEMPTS IN "
                               f"{limits.attempt_window_seconds:g} S")
        self.switch.store.commit()
        log.warning("console connections refused: too many attempts", address=host,
                    limit=limits.attempts_per_address, window=limits.attempt_window_seconds)

    def request_refused(self, who: str, kind: bytes, detail: str) -> None:
        name = kind.decode("ascii", "replace").upper()
        self.switch.audit("security", None, event="CONSOLE REQUEST REFUSED", outcome="REFUSED",
                          operator=who.upper(), text=f"{name} {detail}".strip())
        self.switch.store.commit()
        log.info("console request refused", request=name, detail=detail, operator=who.upper())

    def lost(self, conn: _ServerTransport) -> None:
        self.connections.discard(conn)
        waiting = self._waiting.pop(conn, None)
        if waiting is not None:
            waiting.callback(None)
