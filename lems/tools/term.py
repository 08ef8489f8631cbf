"""``lems term``: an interactive terminal for a person.

Type a message text (``QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101``) and press
Enter; the header is added for you.  The prompt comes back once the reply is
shown (or after ``--timeout`` seconds; a late reply is shown when it comes).
Unsolicited traffic is printed above the line being typed, and the typed text
is drawn again under it.  Line editing and history (up and down arrows) come
from the standard library's readline; sign-on lines, which hold a password, are
kept out of the history.  When the switch closes the connection the terminal
says so and ends at once (exit 1).  ``/quit``, Ctrl-D and Ctrl-C sign the
operator off first (if one is signed on) and say goodbye (exit 0).  Lines
starting with ``/`` are local commands.
"""

from __future__ import annotations

import argparse
import queue
import select
import signal
import socket
import sys
import threading
from typing import Any, Optional

from lems.tools import client as client_mod
from lems.tools.client import LinkClosed, TerminalClient
from lems.wire.headers import HeaderError, Output

HELP = """local commands:
  /help          this text
  /quit          sign off and disconnect (Ctrl-D and Ctrl-C do the same)
  /opr ID        interface terminals: the operator named in each header
anything else is sent to the switch as a message text, e.g.
  SON.OR9990100.OPR/OP010001.PWD/LemsDemo#2026
  QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101
  SOF.OR9990100"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("term", help="interactive terminal for a person", description=__doc__.splitlines()[0],
                              epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("terminal")
    client_mod.add_link_arguments(p)
    p.add_argument("--operator", help="sign this operator on at start")
    p.add_argument("--password", help="(prompted for when --operator is given without it)")
    p.add_argument("--otp", help="TOTP code for two-factor operators")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registered = client_mod.registered(args)
    return run_terminal(args, client_mod.from_args(args), registered)


def show(out: Output, stream: Any = sys.stdout) -> None:
    stream.write(f"{client_mod.heading(out)}\n{out.text}\n")
    stream.flush()


class Screen:
    """Prints frames above the line being typed and draws the prompt and the typed text again."""

    def __init__(self, prompt: str, readline: Any) -> None:
        self.prompt = prompt
        self.readline = readline  # None when stdin is not a terminal
        self.lock = threading.Lock()
        self.reading = False  # the main thread is in input()

    def print(self, text: str) -> None:
        with self.lock:
            if self.reading and self.readline is not None:
                sys.stdout.write("\r\x1b[K" + text + "\n" + self.prompt + self.readline.get_line_buffer())
            else:
                sys.stdout.write(text + "\n")
            sys.stdout.flush()


class Link:
    """The network thread: it alone touches the TLS socket (sends what was queued, prints what arrives)."""

    def __init__(self, client: TerminalClient, screen: Screen, ori: str, ack: bool) -> None:
        self.client, self.screen, self.ori, self.ack = client, screen, ori, ack
        self.outgoing: "queue.Queue[tuple[str, str, str]]" = queue.Queue()
        self.wake_r, self.wake_w = socket.socketpair()
        self.changed = threading.Condition()
        self.answered: set[str] = set()
        self.frames = 0
        self.closed: Optional[str] = None  # why, once the link is gone
        self.stopping = False
        self.signed_on: Optional[str] = None  # the ORI of the signed-on operator
        self.main = threading.main_thread().ident
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def put(self, text: str, opr: str = "") -> str:
        ref = self.client.new_ref()
        self.outgoing.put((text, opr, ref))
        self.wake_w.send(b"x")
        return ref

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate() or self.closed is not None, timeout)

    def _note(self, out: Output) -> None:
        if out.cls == "R" and out.text.startswith("SIGN-ON ACCEPTED"):
            words = out.text.split()
            self.signed_on = words[3] if len(words) > 3 else self.ori
        elif out.cls == "R" and out.text.startswith("SIGN-OFF ACCEPTED"):
            self.signed_on = None
        elif out.cls == "S" and out.text.startswith("SESSION LOCKED"):
            self.signed_on = None

    def loop(self) -> None:
        sock = self.client.sock
        why = "the switch closed the connection"
        try:
            while not self.stopping:
                if not sock.pending():
                    readable, _, _ = select.select([sock, self.wake_r], [], [])
                    if self.wake_r in readable:
                        self.wake_r.recv(4096)
                while True:
                    try:
                        text, opr, ref = self.outgoing.get_nowait()
                    except queue.Empty:
                        break
                    self.client.send(text, ref=ref, opr=opr)
                try:
                    frames = self.client.read_ready()
                except LinkClosed as exc:
                    frames, self.client.frames = self.client.frames, []
                    self._show(frames)
                    why = str(exc) or why
                    break
                self._show(frames)
        except HeaderError as exc:
            why = f"the switch sent something that is not an output frame: {exc}"
        except (OSError, ValueError) as exc:
            why = f"the connection broke: {exc}"
        with self.changed:
            self.closed = why
            self.changed.notify_all()
        with self.screen.lock:
            if self.screen.reading and not self.stopping:  # out of input() at once
                signal.pthread_kill(self.main, signal.SIGINT)

    def _show(self, frames: list[Output]) -> None:
        for out in frames:
            self._note(out)
            if not (out.ref.startswith("ACK") and out.cls == "R"):  # the answers to our own ACKs
                self.screen.print(f"{client_mod.heading(out)}\n{out.text}")
            if self.ack and out.cls in ("U", "S"):  # acknowledged once shown
                self.outgoing.put((f"ACK.{self.ori}.OSN/{out.osn:05d}", "", "ACK"))
            with self.changed:
                self.frames += 1
                if out.cls in ("R", "E"):
                    self.answered.add(out.ref)
                self.changed.notify_all()

    def stop(self) -> None:
        self.stopping = True
        self.wake_w.send(b"x")
        self.thread.join(timeout=5)
        self.wake_r.close()
        self.wake_w.close()


def run_terminal(args: argparse.Namespace, client: TerminalClient, registered: Any) -> int:
    readline = None
    if sys.stdin.isatty():
        try:
            import readline  # line editing and history for input()
        except ImportError:  # pragma: no cover - not on every platform
            readline = None
    interface = registered.type == "interface"
    opr = (args.operator or "").upper() if interface else ""
    password = None
    if args.operator and not interface:
        password = args.password if args.password is not None else client_mod.ask_password(args.operator)
    try:
        client.connect()
    except OSError as exc:
        print(f"lems term: {client_mod.connect_error(client, exc)}", file=sys.stderr)
        return 1
    screen = Screen(f"{registered.id}> ", readline)
    ack, client.ack = client.ack, False  # acknowledged by the link, after the frame is shown
    link = Link(client, screen, registered.ori, ack)
    link.thread.start()
    print(f"connected to {client.host}:{client.port} as {registered.id} ({registered.ori} {registered.type}); "
          "/help for help", flush=True)
    timeout = args.timeout

    def exchange(text: str, line_opr: str = "") -> None:
        ref = link.put(text, line_opr)
        if not link.wait(lambda: ref in link.answered, timeout) and link.closed is None:
            screen.print(f"*** no reply to {ref} in {timeout:g} s; it is shown when it comes")

    link.wait(lambda: link.frames > 0, timeout)  # the banner (or the refusal) first
    status = 0
    try:
        if password is not None and link.closed is None:
            exchange(f"SON.{registered.ori}.OPR/{args.operator.upper()}.PWD/{password}"
                     + (f".OTP/{args.otp}" if args.otp else ""))
        while link.closed is None:
            try:
                with screen.lock:
                    screen.reading = True
                try:
                    line = input(screen.prompt)
                finally:
                    with screen.lock:
                        screen.reading = False
            except EOFError:
                print()
                break
            line = line.strip()
            if not line:
                continue
            if readline is not None and ".PWD/" in line.upper():  # no password in the history
                readline.remove_history_item(readline.get_current_history_length() - 1)
            if line.startswith("/"):
                cmd, _, rest = line.partition(" ")
                if cmd == "/quit":
                    break
                if cmd == "/opr":
                    opr = rest.strip().upper()
                    print(f"operator in header: {opr or '(blank)'}")
                else:
                    print(HELP)
                continue
            exchange(line, opr)
    except KeyboardInterrupt:
        if link.closed is None:
            print("^C")
    try:
        if link.closed is not None:
            if screen.readline is not None:
                sys.stdout.write("\r\x1b[K")
            print(f"*** {link.closed}; lems term ends", flush=True)
            status = 1
        else:
            if link.signed_on is not None:
                exchange(f"SOF.{link.signed_on}")
            print("goodbye", flush=True)
    except KeyboardInterrupt:  # a second Ctrl-C: leave without waiting
        print("goodbye", flush=True)
    finally:
        link.stop()
        client.close()
    return status
