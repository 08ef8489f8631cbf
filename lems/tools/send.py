"""``lems send``: one message, its reply on stdout; exit 0 for ``R``, 1 for ``E``.

Nothing the switch sends is swallowed.  The reply goes to stdout.  Every other
frame this connection receives (traffic queued for the terminal and delivered
as it connects, an SM, a notice) goes to stderr, each under a heading line
``lems send: --- UNSOLICITED ...``, because it was written to this connection: for a
terminal without delivery acknowledgement that is delivery.  ``lems send`` never
acknowledges, so on a terminal registered with ``ack = true`` the frames stay
queued and the switch sends them again to the terminal's next connection.  The
banner, which every connection gets, is not shown.  A refusal (``.21.``,
``.25.``) is the switch's answer to the connection: printed on stdout, exit 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lems.tools import client
from lems.tools.args import EXIT_OK, EXIT_REJECT, fail


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("send", help="send one message, print the reply (exit 0 for R, 1 for E)",
                              description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("terminal")
    p.add_argument("text")
    client.add_link_arguments(p)
    p.add_argument("--operator", help="sign this operator on first (interface terminals: put it in the header)")
    p.add_argument("--password", help="(prompted for when --operator is given without it)")
    p.add_argument("--otp")
    p.add_argument("--ori", help="ORI for the sign-on (default: the terminal's agency)")
    p.set_defaults(func=run)


def show_unsolicited(frames: list[Any], terminal: str, ack: bool) -> None:
    """Each frame on stderr under a heading that says it is not the reply and what became of it."""
    fate = ("not acknowledged: the switch sends it again to the next connection" if ack
            else f"delivered to {terminal} by this connection")
    for out in frames:
        print(f"lems send: {client.heading(out)} ({fate})\n{out.text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from lems.wire.headers import HeaderError

    registered = client.registered(args)
    interface = registered.type == "interface"
    password = args.password
    if args.operator and not interface and password is None:
        password = client.ask_password(args.operator)
    term = client.from_args(args)
    ack, term.ack = term.ack, False  # never acknowledged here: an ack terminal keeps its traffic queued
    shown: list[Any] = []

    def flush(extra: list[Any] = ()) -> None:
        fresh = [*term.unsolicited[len(shown):], *extra]
        show_unsolicited(fresh, registered.id, ack)
        shown.extend(fresh)

    try:
        term.connect()
    except OSError as exc:
        return fail(client.connect_error(term, exc), EXIT_REJECT)
    try:
        first = term.banner()
        if first.cls == "E":  # refused as it connected: the switch says why, then hangs up
            print(first.text)
            return EXIT_REJECT
        if args.operator and not interface:
            # Operators sign on for their own agency: the terminal's, unless --ori says otherwise.
            signed = term.sign_on(args.ori or registered.ori, args.operator, password, args.otp)
            if signed.cls != "R":
                flush()
                print(signed.text)
                return EXIT_REJECT
        reply = term.request(args.text, opr=args.operator.upper() if interface and args.operator else "")
        # What the switch wrote before the reply was read and has already arrived: shown, not dropped.
        flush([f for f in term.read_ready() if f.cls in ("U", "S")])
    except client.LinkClosed as exc:
        flush([f for f in term.frames if f.cls in ("U", "S")])
        said = [f for f in term.frames if f.cls in ("R", "E")]
        for out in said:  # the switch's own words before it closed (an E without our REF)
            print(out.text)
        return fail(f"link: {exc}", EXIT_REJECT) if not said else EXIT_REJECT
    except (client.ReplyTimeout, HeaderError, OSError) as exc:
        flush()
        return fail(f"link: {exc}", EXIT_REJECT)
    finally:
        term.close()
    print(reply.text)
    return EXIT_OK if reply.cls == "R" else EXIT_REJECT
