"""A terminal's side of the link, for people, scripts and tests.

Blocking sockets and the stdlib ``ssl`` module, with the project's own framers:
what a vendor's terminal does, and simple enough to read as an example.
``lems send`` and ``lems term`` are built on it; so are the integration tests.
"""

from __future__ import annotations

import argparse
import getpass
import itertools
import socket
import ssl
import time
from pathlib import Path
from typing import Optional

from lems.wire import framing
from lems.wire.headers import Output, input_bytes


CLASS_NAMES = {"R": "REPLY", "U": "UNSOLICITED", "S": "STATUS", "E": "ERROR"}


class LinkClosed(Exception):
    """The switch closed the connection (or it broke)."""


class ReplyTimeout(Exception):
    """No reply arrived in time."""


def tls_context(ca: Path, cert: Optional[Path], key: Optional[Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


class TerminalClient:
    def __init__(self, host: str, port: int, ca: Path, cert: Optional[Path], key: Optional[Path],
                 framing_name: str = "stx", timeout: float = 10.0, ack: bool = False,
                 server_name: str = "localhost") -> None:
        self.host, self.port = host, port
        self.context = tls_context(ca, cert, key)
        self.server_name = server_name
        self.framer = framing.FRAMERS[framing_name](max_payload=1 << 20, max_garbage=1 << 30)
        self.encode = framing.FRAMERS[framing_name].encode
        self.timeout = timeout
        self.ack = ack
        self.sock: Optional[ssl.SSLSocket] = None
        self.frames: list[Output] = []  # received, not yet taken
        self.unsolicited: list[Output] = []  # U and S frames seen while waiting for replies
        self.ori = ""
        self._refs = itertools.count(1)

    # -- connection -----------------------------------------------------------------

    def connect(self) -> "TerminalClient":
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            self.sock = self.context.wrap_socket(raw, server_hostname=self.server_name)
        except BaseException:
            raw.close()
            raise
        return self

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> "TerminalClient":
        return self.connect() if self.sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- frames -----------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def send(self, text: str, ref: Optional[str] = None, opr: str = "") -> str:
        """Send one message; returns the REF used."""
        ref = ref if ref is not None else self.new_ref()
        self.send_raw(self.encode(input_bytes(ref, opr, text)))
        return ref

    def _fill(self, deadline: float) -> None:
        assert self.sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReplyTimeout("no frame from the switch in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise ReplyTimeout("no frame from the switch in time") from None
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            raise LinkClosed(str(exc)) from exc
        if not data:
            raise LinkClosed("the switch closed the connection")
        self._take(data)

    def _take(self, data: bytes) -> None:
        for event in self.framer.feed(data):
            if isinstance(event, framing.Frame):
                out = Output.from_wire(event.payload)
                self.frames.append(out)
                if self.ack and out.cls in ("U", "S") and self.ori:
                    self.send(f"ACK.{self.ori}.OSN/{out.osn:05d}", ref="ACK")

    def read_ready(self) -> list[Output]:
        """Every frame that can be read now, without waiting (and what was already received).

        ``LinkClosed`` when the connection is closed: the frames read before the
        close stay in ``frames`` for the caller to take.
        """
        assert self.sock is not None
        self.sock.settimeout(0.0)
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except (ssl.SSLWantReadError, BlockingIOError):
                    break
                except (ConnectionError, ssl.SSLError, OSError) as exc:
                    raise LinkClosed(str(exc)) from exc
                if not data:
                    raise LinkClosed("the switch closed the connection")
                self._take(data)
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.timeout)
        frames, self.frames = self.frames, []
        return frames

    def new_ref(self) -> str:
        return f"R{next(self._refs):09d}"

    def receive(self, timeout: Optional[float] = None) -> Output:
        """The next frame of any class; a frame that is not an output frame raises ``HeaderError``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.frames:
            self._fill(deadline)
        return self.frames.pop(0)

    def reply(self, ref: str, timeout: Optional[float] = None) -> Output:
        """The R or E frame answering ``ref``; U and S frames meanwhile go to ``unsolicited``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, out in enumerate(self.frames):
                if out.cls in ("R", "E") and out.ref == ref:
                    del self.frames[i]
                    return out
            for out in [f for f in self.frames if f.cls in ("U", "S")]:
                self.frames.remove(out)
                self.unsolicited.append(out)
            self._fill(deadline)

    def request(self, text: str, opr: str = "", timeout: Optional[float] = None) -> Output:
        return self.reply(self.send(text, opr=opr), timeout)

    def banner(self, timeout: Optional[float] = None) -> Output:
        return self.receive(timeout)

    def sign_on(self, ori: str, operator: str, password: str, otp: Optional[str] = None) -> Output:
        self.ori = ori
        text = f"SON.{ori}.OPR/{operator}.PWD/{password}" + (f".OTP/{otp}" if otp else "")
        return self.request(text)


def for_terminal(home: Path, terminal: str, port: Optional[int] = None, host: Optional[str] = None,
                 listener: Optional[str] = None, timeout: float = 10.0) -> TerminalClient:
    """A client for one of a home's terminals, with its certificate and the home's listener."""
    from lems.base.conf import Settings
    from lems.base.registry import Registry

    settings = Settings.load(home)
    chosen = settings.listeners[0]
    if listener:
        chosen = next(lst for lst in settings.listeners if lst.name == listener)
    registry = Registry.load(settings.home / "terminals")
    terminal = terminal.upper()
    term = registry.terminals.get(terminal)
    pki_dir = settings.pki_dir
    cert, key = pki_dir / "terminals" / f"{terminal}.crt", pki_dir / "terminals" / f"{terminal}.key"
    for path in (cert, key):
        if not path.exists():
            raise FileNotFoundError(f"terminal {terminal} has no certificate: {path} is missing; "
                                    f"`lems ca issue {terminal} --home {home}` issues one")
    if not (pki_dir / "ca.crt").exists():
        raise FileNotFoundError(f"{pki_dir / 'ca.crt'} is missing: {home} has no CA (`lems init DIR` makes a home)")
    # A running switch's bound address (var/run/listeners.json), else the configuration.
    from lems.base import running

    live_host, live_port = running.listener(settings.home, chosen.name) or (chosen.host, chosen.port)
    return TerminalClient(host or live_host, port or live_port, pki_dir / "ca.crt", cert, key,
                          chosen.framing, timeout=timeout, ack=bool(term and term.ack))


# -- for the commands (lems send, lems term) ---------------------------------------------------


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """--home and where the switch is: the options of every command that connects as a terminal."""
    from lems.tools.args import add_home

    add_home(parser)
    parser.add_argument("--port", type=int, help="switch port (default: the home's first listener)")
    parser.add_argument("--host", help="switch address (default: the listener's)")
    parser.add_argument("--listener", help="which listener of the home to use (by name)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for a reply")


def from_args(args: argparse.Namespace) -> TerminalClient:
    """A client for ``args.terminal`` as the link options say."""
    return for_terminal(Path(args.home).resolve(), args.terminal, port=args.port, host=args.host,
                        listener=args.listener, timeout=args.timeout)


def registered(args: argparse.Namespace):
    """The registry's entry for ``args.terminal``; exits with status 2 when there is none."""
    from lems.base.conf import Settings
    from lems.base.registry import Registry
    from lems.tools.args import fail

    home = Path(args.home).resolve()
    Settings.load(home)  # not a home: ConfError says so, and how to make one
    terminal = args.terminal.upper()
    term = Registry.load(home / "terminals").terminals.get(terminal)
    if term is None:
        raise SystemExit(fail(f"terminal {terminal} is not registered in {home / 'terminals'}; "
                              f"`lems terminal add {terminal} --ori ORI --type TYPE --home {args.home}` "
                              "registers it and issues its certificate"))
    return term


def ask_password(operator: str) -> str:
    """The operator's password from the person at the terminal; exits (status 2) when there is no one to ask."""
    import os
    import sys

    from lems.tools.args import fail

    try:
        try:
            os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        except OSError:  # no terminal: a line on stdin (a pipe), if there is one
            line = sys.stdin.readline() if sys.stdin is not None else ""
            if not line:
                raise EOFError from None
            return line.rstrip("\r\n")
        return getpass.getpass(f"password for {operator}: ")
    except EOFError:
        raise SystemExit(fail(f"no terminal to ask for the password of {operator} on: give --password PW")) from None


def heading(out: Output) -> str:
    """One line that says what a frame is: its class, OSN, REF and switch time."""
    return (f"--- {CLASS_NAMES.get(out.cls, out.cls)} OSN {out.osn:05d} REF {out.ref or '-'} "
            f"{out.ts[8:10]}:{out.ts[10:12]}:{out.ts[12:14]} UTC ---")


def connect_error(client: TerminalClient, exc: OSError) -> str:
    """Why the connection could not be made, in words that say what to check."""
    reason = getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {client.host}:{client.port} failed: {exc}"
    return f"cannot connect to {client.host}:{client.port}: {reason} (is the switch running? `lems serve --home DIR`)"
