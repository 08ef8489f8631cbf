"""The ``lems`` command (PROTOCOL.md appendix B): one argparse tree.

Each command module declares its own subcommand (usage text, options,
handler) with ``register(subparsers)``; this module only puts them in one
tree, in the order ``lems --help`` lists them, and runs the handler that the
command line chose.  The modules import what their handler needs when it runs,
so that ``lems send`` does not pay for the switch, the console or the bench.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from lems import __version__
from lems.base.conf import ConfError
from lems.base.registry import RegistryError
from lems.tools import (admin_console, audit, bench, dealer_cmd, home, ppf_cmd, records_cmd, registry_commands, replay,
                        send, serve, term)
from lems.tools.args import fail

COMMANDS = (home, serve, term, send, registry_commands, dealer_cmd, ppf_cmd, audit, records_cmd, replay, bench,
            admin_console)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lems", description="LEMS law enforcement message switch emulator")
    parser.add_argument("--version", action="version", version=f"lems {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, PermissionError, ConfError, RegistryError) as exc:
        return fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
