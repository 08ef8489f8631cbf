"""The administrators' console: a restricted command shell over SSH (twisted.conch).

* Public-key authentication only, against the OpenSSH public keys in
  ``conf/admin_keys`` (``[console] authorized_keys``), read at each attempt so a
  key added or removed takes effect without a restart.  No password method is
  offered; there is no Python prompt, only the commands below.
* An interactive session (``ssh -p PORT admin@HOST``) gets line editing and
  history (``HistoricRecvLine``) and TAB completion of commands and of the ORIs,
  terminals and operators they take.  ``ssh ... admin@HOST status`` runs one
  command and exits 0, or 1 when the command was refused.
* Every command is written to the audit journal (kind ``admin``, event
  ``CONSOLE <COMMAND>``, the command line as text, the key's comment as the
  operator) and committed before its answer is shown.

The operations themselves are ``lems.admin.operations``; this module parses and prints.
``lems console`` opens the console for the local administrator with the key
``lems init`` made (var/console/admin_ed25519): through the system ``ssh`` when
there is one, else through the small conch client below, which the tests use too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch import avatar, recvline
from twisted.conch import error as conch_error
from twisted.conch import interfaces as conch_interfaces
from twisted.conch.insults import insults
from twisted.conch.ssh import channel, common, connection, factory, keys, session, transport, userauth
from twisted.cred import checkers, credentials, portal
from twisted.cred import error as cred_error
from twisted.internet import defer, protocol
from twisted.internet import error as net_error
from twisted.python import failure
from zope.interface import implementer

from lems.admin.operations import Admin, AdminError

log = structlog.get_logger("lems.net.console")

HOST_KEY = "ssh_host_ed25519_key"
ADMIN_KEY = "admin_ed25519"
ADMIN_COMMENT = "lems-admin"
# ssh looks the console's host key up under this name, whatever the port.
HOST_ALIAS = "lems-console"
PROMPT = b"lems> "
AUDIT_DEFAULT, AUDIT_MAX = 20, 1000


def console_dir(home: Path) -> Path:
    return Path(home) / "var" / "console"


# -- keys ------------------------------------------------------------------------------------

def _write_private(path: Path, key: ed25519.Ed25519PrivateKey, comment: str) -> str:
    """Write an OpenSSH private key (owner-only) and its .pub; returns the public line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode('ascii')} {comment}"
    Path(f"{path}.pub").write_text(line + "\n")
    return line


def ensure_host_key(home: Path) -> Path:
    """The console server's host key, made on first use (homes from before the console have none)."""
    path = console_dir(home) / HOST_KEY
    if not path.exists():
        _write_private(path, ed25519.Ed25519PrivateKey.generate(), HOST_ALIAS)
    return path


def init_keys(home: Path, authorized_keys: Path) -> Path:
    """``lems init``: a host key, and an administrator key pair whose public key goes into admin_keys."""
    ensure_host_key(home)
    path = console_dir(home) / ADMIN_KEY
    line = _write_private(path, ed25519.Ed25519PrivateKey.generate(), ADMIN_COMMENT)
    existing = authorized_keys.read_text() if authorized_keys.exists() else ""
    with authorized_keys.open("a") as f:
        if existing and not existing.endswith("\n"):
            f.write("\n")
        f.write(line + "\n")
    return path


_KEY_TYPES = ("ssh-", "ecdsa-", "sk-")


def read_admin_keys(path: Path) -> dict[bytes, str]:
    """Key blob -> the name it signs in as (its comment, or 'admin').  Options before the key type are ignored."""
    out: dict[bytes, str] = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return out
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        start = next((i for i, w in enumerate(words) if w.startswith(_KEY_TYPES)), None)
        try:
            if start is None or len(words) < start + 2:
                raise keys.BadKeyError("no key type and key")
            key = keys.Key.fromString(" ".join(words[start:start + 2]).encode("ascii"))
        except (keys.BadKeyError, ValueError, UnicodeEncodeError) as exc:
            log.warning("admin key line ignored", file=str(path), line=number, error=str(exc))
            continue
        out[key.blob()] = " ".join(words[start + 2:]) or "admin"
    return out


@implementer(checkers.ICredentialsChecker)
class AdminKeyChecker:
    """Public keys listed in admin_keys, and nothing else."""

    credentialInterfaces = (credentials.ISSHPrivateKey,)

    def __init__(self, path: Path, refused: Callable[[str, str], None]) -> None:
        self.path = path
        self.refused = refused

    def requestAvatarId(self, creds: Any) -> defer.Deferred:
        name = read_admin_keys(self.path).get(creds.blob)
        if name is None:
            try:
                fingerprint = keys.Key.fromString(creds.blob).fingerprint(keys.FingerprintFormats.SHA256_BASE64)
            except keys.BadKeyError:
                fingerprint = "unreadable key"
            self.refused(creds.username.decode("utf-8", "replace"), fingerprint)
            return defer.fail(cred_error.UnauthorizedLogin("key not in admin_keys"))
        if not creds.signature:
            # The client only asked whether this key would do; it signs next.
            return defer.fail(conch_error.ValidPublicKey())
        if keys.Key.fromString(creds.blob).verify(creds.signature, creds.sigData):
            return defer.succeed(name)
        return defer.fail(cred_error.UnauthorizedLogin("bad signature"))


# -- the command shell (no I/O) -----------------------------------------------------------------

@attrs.frozen
class Reply:
    lines: list[str]
    ok: bool = True
    close: bool = False


@attrs.frozen
class Command:
    usage: str
    help: str


COMMANDS: dict[str, Command] = {
    "help": Command("help [COMMAND]", "list the commands, or explain one"),
    "status": Command("status", "uptime, connections, messages per second, locked operators, queues, open hits"),
    "sessions": Command("sessions", "live terminal sessions"),
    "terminals": Command("terminals", "registered terminals: agency, type, status, connected"),
    "agencies": Command("agencies", "agencies: type, status, user agreement"),
    "agreements": Command("agreements due [DAYS]", "user agreement reviews and lapses in the next 30 days (or DAYS)"),
    "queue": Command("queue ORI", "traffic waiting for the terminals of an agency"),
    "hits": Command("hits", "open hit confirmation requests"),
    "locked": Command("locked", "operators locked after failed sign-ons"),
    "revoke": Command("revoke ORI|TERMINAL", "revoke an agency or terminal; its live sessions are closed now"),
    "suspend": Command("suspend ORI|TERMINAL", "suspend an agency or terminal; its live sessions are closed now"),
    "reinstate": Command("reinstate ORI|TERMINAL", "make a revoked or suspended agency or terminal active again"),
    "unlock": Command("unlock OPERATOR", "release an operator locked after failed sign-ons"),
    "send": Command("send SM TEXT", "status message from the control terminal agency to every connected terminal"),
    "reload": Command("reload", ("re-read formats/, terminals/ and routes/; refused, keeping the running "
                                 "configuration, when any of them is broken")),
    "audit": Command(("audit [ori ORI] [terminal ID] [operator ID] [mke KEY] [kind KIND] [text WORD] "
                      "[since WHEN] [until WHEN] [last N]"),
                     f"search the audit journal: the newest N records (default {AUDIT_DEFAULT}), oldest first"),
    "quit": Command("quit", "close the console (also: exit, Ctrl-D)"),
}
ALIASES = {"exit": "quit", "?": "help"}
AUDIT_FILTERS = ("ori", "terminal", "operator", "mke", "kind", "text", "since", "until")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def _first_line(text: Optional[str], width: int = 60) -> str:
    line = (text or "").split("\n", 1)[0]
    return line if len(line) <= width else line[:width - 3] + "..."


class Console:
    """One administrator's shell: a line in, a Reply out, the line audited."""

    def __init__(self, admin: Admin, who: str = "admin", remote: str = "") -> None:
        self.admin = admin
        self.who = who
        self.remote = remote

    @property
    def switch(self) -> Any:
        return self.admin.switch

    def execute(self, line: str) -> Reply:
        words = line.split()
        if not words:
            return Reply([])
        name = ALIASES.get(words[0].lower(), words[0].lower())
        handler = getattr(self, f"do_{name}", None) if name in COMMANDS else None
        target: dict[str, str] = {}
        try:
            if handler is None:
                reply = Reply([f"unknown command {words[0]!r}; type help"], ok=False)
            else:
                reply = handler(words[1:], line, target)
        except AdminError as exc:
            reply = Reply([f"REFUSED: {exc}"], ok=False)
        except Exception as exc:  # a bug in one command must not end the administrator's session
            log.exception("console command failed", command=line)
            reply = Reply([f"ERROR: {type(exc).__name__}: {exc}"], ok=False)
        event = f"CONSOLE {name.upper()}" if handler is not None else "CONSOLE UNKNOWN COMMAND"
        self.switch.audit("admin", None, event=event, text=line.strip(), operator=self.who.upper(),
                          remote=self.remote or None, outcome="OK" if reply.ok else "REFUSED", **target)
        self.switch.store.commit()
        return reply

    # -- completion --------------------------------------------------------------------------

    def complete(self, before: str) -> tuple[str, list[str]]:
        """The word being typed and what it can become."""
        words = before.split()
        if before and not before[-1].isspace():
            word, done = words[-1], words[:-1]
        else:
            word, done = "", words
        registry = self.switch.registry
        if not done:
            options = list(COMMANDS)
        else:
            command = ALIASES.get(done[0].lower(), done[0].lower())
            previous = done[-1].lower()
            options = []
            if len(done) == 1:
                options = self._first_arguments(command)
            elif command == "audit" and len(done) % 2 == 1:
                options = [*AUDIT_FILTERS, "last"]
            elif command == "audit":
                options = {"ori": list(registry.agencies), "terminal": list(registry.terminals),
                           "operator": list(registry.operators), "kind": ["in", "out", "security", "admin"]
                           }.get(previous, [])
        return word, sorted(o for o in options if o.lower().startswith(word.lower()))

    def _first_arguments(self, command: str) -> list[str]:
        registry = self.switch.registry
        if command in ("revoke", "suspend", "reinstate"):
            return [*registry.agencies, *registry.terminals]
        if command == "unlock":
            return sorted({*self.switch.locked_operators(), *registry.operators})
        return {"help": list(COMMANDS), "agreements": ["due"], "send": ["SM"], "audit": [*AUDIT_FILTERS, "last"],
                "queue": list(registry.agencies)}.get(command, [])

    # -- views -------------------------------------------------------------------------------

    def do_help(self, args: list[str], line: str, target: dict) -> Reply:
        if args:
            name = ALIASES.get(args[0].lower(), args[0].lower())
            if name not in COMMANDS:
                return Reply([f"no command {args[0]!r}"], ok=False)
            return Reply([COMMANDS[name].usage, f"  {COMMANDS[name].help}"])
        width = max(len(c.usage) for c in COMMANDS.values() if len(c.usage) < 30)
        lines = []
        for c in COMMANDS.values():
            if len(c.usage) <= width:
                lines.append(f"{c.usage:<{width}}  {c.help}")
            else:  # too long to share a line with its help
                lines += [c.usage, f"{'':<{width}}  {c.help}"]
        lines.append("TAB completes commands and identifiers; up and down arrows recall earlier lines.")
        return Reply(lines)

    def do_status(self, args: list[str], line: str, target: dict) -> Reply:
        s = self.admin.status()
        lines = [f"{s.name}  up {_duration(s.uptime)}",
                 f"connections   {s.connections} ({s.sessions} sessions, {s.signed_on} signed on)",
                 f"messages/s    {s.rate_in:.2f} in  {s.rate_out:.2f} out  (last 60 s)",
                 f"locked        {' '.join(s.locked) if s.locked else 'none'}"]
        if s.depths is not None:
            waiting = "  ".join(f"{t} {n}" for t, n in s.depths.items())
            lines.append(f"queues        {waiting or 'empty'}")
        if s.open_hits is not None:
            lines.append(f"open hits     {s.open_hits}")
        return Reply(lines)

    def do_sessions(self, args: list[str], line: str, target: dict) -> Reply:
        rows = self.admin.sessions()
        lines = [f"{'TERMINAL':<9}{'ORI':<10}{'TYPE':<13}{'STATE':<11}{'OPERATOR':<9} {'IDLE':>8}  REMOTE"]
        lines += [f"{r.terminal:<9}{r.ori:<10}{r.type:<13}{r.state:<11}{r.operator or '-':<9} "
                  f"{_duration(r.idle)[3:]:>8}  {r.remote}" for r in rows]
        lines.append(f"{len(rows)} session(s)")
        return Reply(lines)

    def do_terminals(self, args: list[str], line: str, target: dict) -> Reply:
        lines = [f"{'TERMINAL':<9}{'ORI':<10}{'TYPE':<13}{'STATUS':<10}{'ACK':<4}CONNECTED"]
        lines += [f"{t.id:<9}{t.ori:<10}{t.type:<13}{t.status:<10}{'yes' if t.ack else 'no':<4}"
                  f"{'yes' if live else 'no'}" for t, live in self.admin.terminals()]
        return Reply(lines)

    def do_agencies(self, args: list[str], line: str, target: dict) -> Reply:
        lines = [f"{'ORI':<10}{'TYPE':<21}{'STATUS':<10}{'AGREEMENT':<10}NAME"]
        for a, problem in self.admin.agencies():
            lines.append(f"{a.ori:<10}{a.type:<21}{a.status:<10}{'in force' if problem is None else 'NOT':<10}"
                         f"{a.name}{' (control terminal)' if a.control else ''}")
            if problem:
                lines.append(f"{'':<10}{problem}")
        return Reply(lines)

    def do_agreements(self, args: list[str], line: str, target: dict) -> Reply:
        if not args or args[0].lower() != "due" or len(args) > 2 or (len(args) == 2 and not args[1].isdigit()):
            return Reply([f"usage: {COMMANDS['agreements'].usage}"], ok=False)
        days = int(args[1]) if len(args) == 2 else 30
        due = self.admin.agreements_due(days)
        lines = [f"{a.ori}  {a.name}: {what}" for a, what in due]
        return Reply(lines or [f"no user agreement review or lapse in the next {days} days"])

    def do_queue(self, args: list[str], line: str, target: dict) -> Reply:
        if len(args) != 1:
            return Reply([f"usage: {COMMANDS['queue'].usage}"], ok=False)
        frames = self.admin.queue(args[0])
        target["ori"] = args[0].upper()
        lines = [f"{'TERMINAL':<9}{'PRI':<4}{'CLS':<4}{'QUEUED':<17}{'ACK':<10}TEXT"]
        lines += [f"{f.terminal:<9}{f.priority:<4}{f.cls:<4}{f.queued:<17}"
                  f"{f'OSN/{f.osn:05d}' if f.awaiting_ack else '-':<10}{_first_line(f.text, 40)}" for f in frames]
        lines.append(f"{len(frames)} frame(s) waiting for {args[0].upper()}")
        return Reply(lines)

    def do_hits(self, args: list[str], line: str, target: dict) -> Reply:
        hits = self.admin.open_hits()
        lines = [f"{'ID':>5} {'NIC':<11}{'REQUESTER':<10}{'ENTERING':<10}RNO PRI {'STATE':<8}DUE"]
        lines += [f"{h.id:>5} {h.nic:<11}{h.requester:<10}{h.entering:<10}{h.rno:<4}{h.priority:<4}"
                  f"{h.state:<8}{h.due}" for h in hits]
        lines.append(f"{len(hits)} open hit confirmation request(s)")
        return Reply(lines)

    def do_locked(self, args: list[str], line: str, target: dict) -> Reply:
        locked = self.admin.locked()
        return Reply([" ".join(locked)] if locked else ["no operator is locked"])

    def do_audit(self, args: list[str], line: str, target: dict) -> Reply:
        filters: dict[str, str] = {}
        limit = AUDIT_DEFAULT
        if len(args) % 2:
            return Reply([f"usage: {COMMANDS['audit'].usage}"], ok=False)
        for key, value in zip(args[::2], args[1::2], strict=True):
            key = key.lower()
            if key == "last" and value.isdigit():
                limit = min(int(value), AUDIT_MAX)
            elif key in AUDIT_FILTERS:
                filters[key] = value.lower() if key == "kind" else value
            else:
                return Reply([f"usage: {COMMANDS['audit'].usage}"], ok=False)
        records = self.admin.audit(limit=limit, **filters)
        lines = [f"{r.seq:>7} {r.ts} {r.kind:<8} {r.terminal or '-':<8} {r.ori or '-':<9} {r.operator or '-':<10} "
                 f"{r.event or ' '.join(x for x in (r.cls, r.mke) if x) or '-'}"
                 f"{' ' + r.outcome if r.outcome else ''}  {_first_line(r.text)}".rstrip() for r in records]
        lines.append(f"{len(records)} record(s)")
        return Reply(lines)

    # -- actions -----------------------------------------------------------------------------

    def _status_change(self, action: str, args: list[str], target: dict) -> Reply:
        if len(args) != 1:
            return Reply([f"usage: {COMMANDS[action].usage}"], ok=False)
        change = self.admin.set_status(action, args[0])
        target["terminal" if change.kind == "terminal" else "ori"] = change.target
        lines = [f"{change.kind} {change.target} {change.after} (was {change.before})"]
        if change.closed:
            lines.append(f"closed live session(s): {' '.join(change.closed)}")
        return Reply(lines)

    def do_revoke(self, args: list[str], line: str, target: dict) -> Reply:
        return self._status_change("revoke", args, target)

    def do_suspend(self, args: list[str], line: str, target: dict) -> Reply:
        return self._status_change("suspend", args, target)

    def do_reinstate(self, args: list[str], line: str, target: dict) -> Reply:
        return self._status_change("reinstate", args, target)

    def do_unlock(self, args: list[str], line: str, target: dict) -> Reply:
        if len(args) != 1:
            return Reply([f"usage: {COMMANDS['unlock'].usage}"], ok=False)
        was_locked = self.admin.unlock(args[0], by=self.who)
        operator = args[0].upper()
        return Reply([f"operator {operator} unlocked" if was_locked else f"operator {operator} was not locked"])

    def do_send(self, args: list[str], line: str, target: dict) -> Reply:
        if len(args) < 2 or args[0].upper() != "SM":
            return Reply([f"usage: {COMMANDS['send'].usage}"], ok=False)
        # The text is free text: keep its case and spacing as typed.
        text = line.split(None, 2)[2]
        outcomes = self.admin.send_status_message(text)
        if not outcomes:
            return Reply(["no terminal is connected; nothing sent"])
        return Reply([f"SM sent to {len(outcomes)} connected terminal(s)",
                      *(f"{t} {outcome}" for t, outcome in outcomes)])

    def do_reload(self, args: list[str], line: str, target: dict) -> Reply:
        r = self.admin.reload()
        lines = [(f"reloaded: {r.keys} message keys, {r.agencies} agencies, {r.terminals} terminals, "
                  f"{r.operators} operators, routes")]
        if r.closed:
            lines.append(f"closed live session(s) no longer admitted: {' '.join(r.closed)}")
        return Reply(lines)

    def do_quit(self, args: list[str], line: str, target: dict) -> Reply:
        return Reply(["bye"], close=True)


# -- SSH server ----------------------------------------------------------------------------------

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

    def __init__(self, server: "ConsoleServer", who: str) -> None:
        super().__init__()
        self.server = server
        self.who = who
        self.size = (80, 24)
        self.shell: Optional[insults.ServerProtocol] = None
        self.channelLookup[b"session"] = session.SSHSession

    def _console(self, pp: Any) -> Console:
        peer = getattr(pp.getPeer(), "address", None)  # SSHTransportAddress wraps the TCP address
        remote = f"{peer.host}:{peer.port}" if hasattr(peer, "host") else ""
        return Console(Admin(self.server.service.switch, self.server.service), self.who, remote)

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
    def __init__(self, server: "ConsoleServer") -> None:
        self.server = server

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> tuple:
        if conch_interfaces.IConchUser not in interfaces:
            # Only the SSH shell is offered: any other kind of avatar is a refused login.
            raise cred_error.UnauthorizedLogin("the console offers SSH sessions only")
        who = avatar_id if isinstance(avatar_id, str) else avatar_id.decode("utf-8", "replace")
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

    def __init__(self, server: "ConsoleServer", host_key: keys.Key) -> None:
        self.server = server
        self.portal = portal.Portal(AdminRealm(server), [AdminKeyChecker(server.authorized_keys, server.refused)])
        self.publicKeys = {host_key.sshType(): host_key.public()}
        self.privateKeys = {host_key.sshType(): host_key}


class ConsoleServer:
    """The console listener of one Service."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.reactor = service.reactor
        self.authorized_keys = service.settings.authorized_keys
        self.connections: set[_ServerTransport] = set()
        self._waiting: dict[_ServerTransport, defer.Deferred] = {}
        self.listening: Any = None
        self.port: Optional[int] = None

    def listen(self, port: int, host: str) -> int:
        host_key = keys.Key.fromFile(str(ensure_host_key(self.service.home)))
        self.listening = self.reactor.listenTCP(port, ConsoleFactory(self, host_key), interface=host)
        self.port = self.listening.getHost().port
        if not read_admin_keys(self.authorized_keys):
            log.warning("no administrator key: nobody can sign in to the console", file=str(self.authorized_keys))
        return self.port

    def audit(self, event: str, who: str) -> None:
        # Upper case like every operator id, so `audit operator NAME` finds it.
        self.service.switch.audit("security", None, event=event, operator=who.upper())
        self.service.switch.store.commit()

    def refused(self, user: str, fingerprint: str) -> None:
        self.service.switch.audit("security", None, event="CONSOLE KEY REFUSED", outcome="REFUSED",
                                  text=f"USER {user} KEY {fingerprint}")
        self.service.switch.store.commit()

    def lost(self, conn: _ServerTransport) -> None:
        self.connections.discard(conn)
        waiting = self._waiting.pop(conn, None)
        if waiting is not None:
            waiting.callback(None)

    def stop(self) -> defer.Deferred:
        """Stop listening and hang up every administrator; fires when all are gone (before the store closes)."""
        done = [defer.maybeDeferred(self.listening.stopListening)] if self.listening is not None else []
        self.listening = None
        for conn in list(self.connections):
            self._waiting[conn] = d = defer.Deferred()
            done.append(d)
            conn.transport.loseConnection()
        return defer.DeferredList(done)


def listen(service: Any) -> ConsoleServer:
    """Start a Service's console on --console-port, else the [console] port.

    Port 0 is any free port; a service whose terminal listeners were put on free
    ports (``--port 0``, the tests) gets a free console port too, never a fixed one.
    """
    port = service.console_port
    if port is None:
        port = 0 if service.port_override == 0 else service.settings.console_port
    server = ConsoleServer(service)
    server.listen(port, service.host_override or service.settings.console_host)
    log.info("console listening", port=server.port)
    return server


# -- a small SSH client (lems console without ssh, and the tests) --------------------------------------

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


class _ClientTransport(transport.SSHClientTransport):
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
    host = args.host or settings.console_host
    port = args.port if args.port is not None else settings.console_port
    if shutil.which("ssh") and not args.builtin:
        return subprocess.call(_ssh_command(home, host, port, args.command))
    return _builtin(home, host, port, args.command)
