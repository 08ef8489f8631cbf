"""``lems term``: an interactive terminal for a person.

Type a message text (``QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101``) and press
Enter; the header is added for you.  Replies and unsolicited traffic are
printed as they arrive.  Lines starting with ``/`` are local commands.
"""

from __future__ import annotations

import argparse
import getpass
import queue
import sys
import threading
from typing import Any

from lems.tools import client as client_mod
from lems.tools.client import LinkClosed, ReplyTimeout, TerminalClient
from lems.wire.headers import HeaderError, Output

HELP = """local commands:
  /help          this text
  /quit          disconnect (Ctrl-D does the same)
  /opr ID        interface terminals: the operator named in each header
anything else is sent to the switch as a message text, e.g.
  SON.OR9990100.OPR/OP010001.PWD/LemsDemo#2026
  QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101
  SOF.OR9990100"""

CLASS_NAMES = {"R": "REPLY", "U": "UNSOLICITED", "S": "STATUS", "E": "ERROR"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("term", help="interactive terminal for a person")
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
    stream.write(f"\n--- {CLASS_NAMES.get(out.cls, out.cls)} OSN {out.osn:05d} REF {out.ref or '-'} "
                 f"{out.ts[8:10]}:{out.ts[10:12]}:{out.ts[12:14]} UTC ---\n{out.text}\n")
    stream.flush()


def run_terminal(args: argparse.Namespace, client: TerminalClient, registered: Any) -> int:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:  # pragma: no cover - not on every platform
        pass
    interface = registered.type == "interface"
    opr = (args.operator or "").upper() if interface else ""
    try:
        client.connect()
    except OSError as exc:
        print(f"lems term: cannot connect to {client.host}:{client.port}: {exc}", file=sys.stderr)
        return 1
    closed = threading.Event()
    outgoing: "queue.Queue[tuple[str, str, str | None]]" = queue.Queue()

    def network() -> None:
        # One thread owns the TLS socket (OpenSSL objects are not safe for a
        # concurrent read and write): it sends what the prompt queued, then
        # waits briefly for frames and prints them.
        while not closed.is_set():
            try:
                while True:
                    text, line_opr, ref = outgoing.get_nowait()
                    client.send(text, ref=ref, opr=line_opr)
            except queue.Empty:
                pass
            except OSError as exc:
                print(f"\n*** cannot send: {exc}", flush=True)
                closed.set()
                return
            try:
                out = client.receive(timeout=0.2)
            except ReplyTimeout:
                continue
            except HeaderError as exc:  # the switch sent something that is not an output frame
                print(f"\n*** not an output frame, disconnecting: {exc}", flush=True)
                closed.set()
                return
            except (LinkClosed, OSError):
                if not closed.is_set():
                    print("\n*** the switch closed the connection", flush=True)
                closed.set()
                return
            show(out)
            if ack and out.cls in ("U", "S"):
                outgoing.put((f"ACK.{registered.ori}.OSN/{out.osn:05d}", "", "ACK"))

    ack, client.ack = client.ack, False  # acknowledged here, after the frame is shown
    thread = threading.Thread(target=network, daemon=True)
    thread.start()
    print(f"connected to {client.host}:{client.port} as {registered.id} ({registered.ori} {registered.type}); "
          "/help for help", flush=True)
    if args.operator and not interface:
        password = args.password if args.password is not None else getpass.getpass(f"password for {args.operator}: ")
        text = f"SON.{registered.ori}.OPR/{args.operator.upper()}.PWD/{password}"
        outgoing.put((text + (f".OTP/{args.otp}" if args.otp else ""), "", None))
    try:
        while not closed.is_set():
            try:
                line = input(f"{registered.id}> ")
            except EOFError:
                break
            line = line.strip()
            if not line:
                continue
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
            if closed.is_set():
                break
            outgoing.put((line, opr, None))
    except KeyboardInterrupt:
        pass
    finally:
        closed.set()
        thread.join(timeout=2)
        client.close()
    return 0
