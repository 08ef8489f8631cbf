"""``lems console``: the command line of the administrators' console.

The console itself (the SSH client, the built-in one, the keys) is
``lems.net.console``; this module only declares its options in the one
``lems`` tree and hands them to ``lems.net.console.main``.
"""

from __future__ import annotations

import argparse

from lems.tools.args import add_home


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("console", help="the administrators' console (SSH)",
                              description="the administrators' console (SSH)")
    add_home(p)
    p.add_argument("--port", type=int, help="console port (default: the home's [console] port)")
    p.add_argument("--host", help="console address (default: the home's [console] host)")
    p.add_argument("--builtin", action="store_true", help="use the built-in SSH client even if ssh is installed")
    # Everything after the command word is the console's (`send SM -TEST-`), as it always was.
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND", help="run this one command and exit")
    p.set_defaults(func=run)


def console_argv(args: argparse.Namespace) -> list[str]:
    """The arguments ``lems.net.console.main`` takes for what was parsed here."""
    argv = ["--home", args.home]
    if args.port is not None:
        argv += ["--port", str(args.port)]
    if args.host:
        argv += ["--host", args.host]
    if args.builtin:
        argv.append("--builtin")
    return argv + list(args.words)


def run(args: argparse.Namespace) -> int:
    from lems.net import console

    return console.main(console_argv(args))
