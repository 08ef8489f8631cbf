"""What the commands of ``lems`` share: the ``--home`` option, usage failures and exit codes.

Every command module registers its own subcommand with ``register(subparsers)``
(``lems.cli`` builds the tree from them); ``standalone`` runs one of them on
its own, for the tools that are also ``python -m lems.tools.NAME``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

EXIT_OK, EXIT_REJECT, EXIT_USAGE = 0, 1, 2


def add_home(parser: argparse.ArgumentParser, **options) -> None:
    options.setdefault("default", ".")
    options.setdefault("help", "the LEMS home (default: current directory)")
    parser.add_argument("--home", **options)


def home_of(args: argparse.Namespace) -> Path:
    return Path(args.home or ".").resolve()


def fail(message: str, code: int = EXIT_USAGE, prog: str = "lems") -> int:
    """Say what is wrong on stderr, as ``PROG: message``; the exit status to return."""
    print(f"{prog}: {message}", file=sys.stderr)
    return code


class LazyChoices:
    """``choices`` for argparse that are loaded when first needed (a value to check, the help).

    ``lems`` builds every subcommand's parser on every run; a list of choices
    that lives in a heavy module must not make ``lems send`` import it.
    """

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._values: Optional[tuple[str, ...]] = None

    def _get(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __contains__(self, value: object) -> bool:
        return value in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())


def standalone(register: Callable[[argparse._SubParsersAction], None], name: str, argv: Sequence[str]) -> int:
    """``python -m lems.tools.NAME ARGS`` is ``lems NAME ARGS``: the same subparser and handler."""
    parser = argparse.ArgumentParser(prog="lems")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args([name, *argv])
    return args.func(args)
