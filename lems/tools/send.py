"""``lems send``: one message, its reply on stdout; exit 0 for ``R``, 1 for ``E``."""

from __future__ import annotations

import argparse
import getpass

from lems.tools import client
from lems.tools.args import EXIT_OK, EXIT_REJECT, fail


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("send", help="send one message, print the reply (exit 0 for R, 1 for E)")
    p.add_argument("terminal")
    p.add_argument("text")
    client.add_link_arguments(p)
    p.add_argument("--operator", help="sign this operator on first (interface terminals: put it in the header)")
    p.add_argument("--password")
    p.add_argument("--otp")
    p.add_argument("--ori", help="ORI for the sign-on (default: the terminal's agency)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lems.wire.headers import HeaderError

    registered = client.registered(args)
    interface = registered.type == "interface"
    password = args.password
    if args.operator and not interface and password is None:
        password = getpass.getpass(f"password for {args.operator}: ")
    try:
        with client.from_args(args) as term:
            term.banner()
            if args.operator and not interface:
                # Operators sign on for their own agency: the terminal's, unless --ori says otherwise.
                signed = term.sign_on(args.ori or registered.ori, args.operator, password, args.otp)
                if signed.cls != "R":
                    print(signed.text)
                    return EXIT_REJECT
            reply = term.request(args.text, opr=args.operator.upper() if interface and args.operator else "")
    except (client.LinkClosed, client.ReplyTimeout, HeaderError, OSError) as exc:
        return fail(f"link: {exc}", EXIT_REJECT)
    print(reply.text)
    return EXIT_OK if reply.cls == "R" else EXIT_REJECT
