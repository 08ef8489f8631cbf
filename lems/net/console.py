"""``lems console``: the administrators' console from this machine, and a small SSH client.

``lems console`` opens the console (lems.net.console_server) for the local
administrator with the key ``lems init`` made (var/console/admin_ed25519):
through the system ``ssh`` when there is one, checking the host key the home
holds, else through the small conch client below, which the tests use too.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from twisted.conch import error as conch_error
from twisted.conch.ssh import channel, common, connection, keys, session, transport, userauth
from twisted.internet import defer, protocol
from twisted.python import failure

from lems.net.sshalgorithms import ModernAlgorithms
from lems.net.sshkeys import ADMIN_KEY, HOST_ALIAS, HOST_KEY, console_dir


class AuthRefused(Exception):
    """The console refused the key."""


class ConsoleCall:
    """One SSH session to the console: one command (exec) or an interactive shell."""

    def __init__(self, key: keys.Key, user: str = "admin", command: Optional[str] = None, pty: bool = False,
                 host_key: Optional[bytes] = None, size: tuple[int, int] = (80, 24),
                 on_data: Optional[Callable[[bytes], None]] = None) -> None:
        self.key = key
        self.user = user
        self.command = command
        self.pty = pty
        self.host_key = host_key
        self.size = size
        self.on_data = on_data
        self.output = bytearray()
        self.exit_status: Optional[int] = None
        self.channel: Optional["_ClientChannel"] = None
        self.authenticated = False
        # Fires with (exit status, output) when the session ends; fails with AuthRefused or the connection error.
        self.done: defer.Deferred = defer.Deferred()

    @property
    def text(self) -> str:
        return self.output.decode("ascii", "replace")

    def write(self, data: bytes) -> None:
        if self.channel is not None:
            self.channel.write(data)

    def received(self, data: bytes) -> None:
        self.output += data
        if self.on_data is not None:
            self.on_data(data)

    def finish(self, error: Optional[BaseException] = None) -> None:
        if self.done.called:
            return
        if error is not None:
            self.done.errback(failure.Failure(error))
        else:
            self.done.callback((self.exit_status, self.text))


class _ClientTransport(ModernAlgorithms, transport.SSHClientTransport):
    call: ConsoleCall

    def verifyHostKey(self, host_key: bytes, fingerprint: bytes) -> defer.Deferred:
        if self.call.host_key is not None and host_key != self.call.host_key:
            mismatch = conch_error.ConchError("the console's host key is not the one this home holds")
            self.call.finish(mismatch)  # first, so the hang-up that follows is not taken for a refused key
            return defer.fail(mismatch)
        return defer.succeed(True)

    def connectionSecure(self) -> None:
        self.requestService(_ClientAuth(self.call, _ClientConnection(self.call)))

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        if not self.call.authenticated:
            self.call.finish(AuthRefused("the console refused the key"))
        else:
            self.call.finish()


class _ClientAuth(userauth.SSHUserAuthClient):
    preferredOrder = (b"publickey",)  # never a password

    def __init__(self, call: ConsoleCall, conn: connection.SSHConnection) -> None:
        super().__init__(call.user.encode("utf-8"), conn)
        self.call = call
        self.offered = False

    def getPublicKey(self) -> Optional[keys.Key]:
        if self.offered:
            return None
        self.offered = True
        return self.call.key.public()

    def getPrivateKey(self) -> defer.Deferred:
        return defer.succeed(self.call.key)


class _ClientConnection(connection.SSHConnection):
    def __init__(self, call: ConsoleCall) -> None:
        super().__init__()
        self.call = call

    def serviceStarted(self) -> None:
        super().serviceStarted()
        self.call.authenticated = True
        self.openChannel(_ClientChannel(self.call, conn=self))


class _ClientChannel(channel.SSHChannel):
    name = b"session"

    def __init__(self, call: ConsoleCall, **kw: Any) -> None:
        super().__init__(**kw)
        self.call = call

    def channelOpen(self, data: bytes) -> None:
        self.call.channel = self
        cols, rows = self.call.size
        if self.call.pty:
            self.conn.sendRequest(self, b"pty-req", session.packRequest_pty_req(b"xterm", (rows, cols, 0, 0), b""),
                                  wantReply=False)
        if self.call.command is not None:
            self.conn.sendRequest(self, b"exec", common.NS(self.call.command.encode("utf-8")), wantReply=False)
        else:
            self.conn.sendRequest(self, b"shell", b"", wantReply=False)

    def dataReceived(self, data: bytes) -> None:
        self.call.received(data)

    def request_exit_status(self, data: bytes) -> int:
        self.call.exit_status = struct.unpack(">L", data)[0]
        return 1

    def closed(self) -> None:
        self.call.finish()
        self.conn.transport.loseConnection()


def connect(reactor: Any, host: str, port: int, call: ConsoleCall) -> ConsoleCall:
    """Open ``call`` against a console; watch ``call.done``."""
    client_factory = protocol.ClientFactory()

    def build(addr: Any) -> _ClientTransport:
        proto = _ClientTransport()
        proto.call = call
        proto.factory = client_factory
        return proto

    client_factory.buildProtocol = build
    client_factory.clientConnectionFailed = lambda connector, reason: call.finish(reason.value)
    reactor.connectTCP(host, port, client_factory, timeout=10)
    return call


# -- lems console -------------------------------------------------------------------------------------

def _ssh_command(home: Path, host: str, port: int, words: list[str]) -> list[str]:
    key = console_dir(home) / ADMIN_KEY
    host_pub = console_dir(home) / f"{HOST_KEY}.pub"
    cmd = ["ssh", "-i", str(key), "-p", str(port), "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no"]
    if host_pub.exists():
        # The home holds the console's host key: check it instead of trusting whatever answers.
        known = console_dir(home) / "known_hosts"
        known.write_text(f"{HOST_ALIAS} {' '.join(host_pub.read_text().split()[:2])}\n")
        cmd += ["-o", f"HostKeyAlias={HOST_ALIAS}", "-o", f"UserKnownHostsFile={known}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
    else:
        cmd += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    if not words:
        cmd.append("-t")
    # The console reads the command as one line of words, not as shell syntax.
    return cmd + [f"admin@{host}", *([" ".join(words)] if words else [])]


def _builtin(home: Path, host: str, port: int, words: list[str]) -> int:
    """The conch client, for machines without ssh: raw terminal in, console out."""
    import termios
    import tty

    from twisted.internet import reactor, stdio

    key = keys.Key.fromFile(str(console_dir(home) / ADMIN_KEY))
    host_pub = console_dir(home) / f"{HOST_KEY}.pub"
    host_key = keys.Key.fromFile(str(host_pub)).blob() if host_pub.exists() else None
    interactive = not words and sys.stdin.isatty()
    size = shutil.get_terminal_size()
    out = sys.stdout.buffer

    def show(data: bytes) -> None:
        out.write(data)
        out.flush()

    call = ConsoleCall(key, command=" ".join(words) if words else None, pty=interactive, host_key=host_key,
                       size=(size.columns, size.lines), on_data=show)
    result: dict[str, Any] = {}

    class Keyboard(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            call.write(data)

        def connectionLost(self, reason: Any = None) -> None:
            if call.channel is not None:
                call.channel.conn.sendEOF(call.channel)

    def ended(outcome: Any) -> None:
        result["outcome"] = outcome
        if reactor.running:
            reactor.stop()

    call.done.addBoth(ended)
    connect(reactor, host, port, call)
    saved = termios.tcgetattr(sys.stdin.fileno()) if interactive else None
    if call.command is None:
        stdio.StandardIO(Keyboard())
    try:
        if saved is not None:
            tty.setraw(sys.stdin.fileno())
        reactor.run()
    finally:
        if saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
    outcome = result.get("outcome")
    if isinstance(outcome, failure.Failure):
        print(f"\nlems console: {outcome.getErrorMessage()}", file=sys.stderr)
        return 1
    status = outcome[0] if outcome else None
    return status or 0


def main(argv: Optional[list[str]] = None) -> int:
    from lems.base.conf import ConfError, Settings

    parser = argparse.ArgumentParser(prog="lems console", description="the administrators' console (SSH)")
    parser.add_argument("--home", default=".", help="the LEMS home (default: current directory)")
    parser.add_argument("--port", type=int, help="console port (default: the home's [console] port)")
    parser.add_argument("--host", help="console address (default: the home's [console] host)")
    parser.add_argument("--builtin", action="store_true", help="use the built-in SSH client even if ssh is installed")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="run this one command and exit")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `lems console -- --home DIR ...` passes options through the lems parser
        argv = argv[1:]
    args = parser.parse_args(argv)
    home = Path(args.home).resolve()
    try:
        settings = Settings.load(home)
    except ConfError as exc:
        print(f"lems console: {exc}", file=sys.stderr)
        return 2
    if not (console_dir(home) / ADMIN_KEY).exists():
        print(f"lems console: no administrator key {console_dir(home) / ADMIN_KEY} (`lems init` makes one)",
              file=sys.stderr)
        return 2
    # A running switch's bound console (var/run/listeners.json), else the configuration.
    from lems.base import running

    live_host, live_port = running.console(home) or (settings.console_host, settings.console_port)
    host = args.host or live_host
    port = args.port if args.port is not None else live_port
    if shutil.which("ssh") and not args.builtin:
        return subprocess.call(_ssh_command(home, host, port, args.command))
    return _builtin(home, host, port, args.command)
