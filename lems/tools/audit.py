"""``lems audit search|verify|export|dissemination``: read the audit journal.

The store is opened read-only (SQLite URI ``mode=ro``), so these commands are
safe while the switch runs: WAL readers see the last committed turn and never
block the writer.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Optional, Sequence

from lems.tools.args import EXIT_OK, EXIT_USAGE, LazyChoices, add_home, home_of

EXIT_BAD = 1
TEXT_WIDTH = 80


def connect_ro(store_path: Path) -> sqlite3.Connection:
    """The store, read-only; a missing file is an error, never a new empty store."""
    path = Path(store_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no store at {path}")
    conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)
    # Tampered bytes must not stop a search or export; verify names them.
    conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
    return conn


def _journal():
    """The journal module, imported when an audit command runs (it brings structlog and Twisted with it)."""
    from lems.store import journal

    return journal


def _redact():
    """What every shown or exported text goes through: sign-on secrets written PWD/* and OTP/*,
    journals from before the masking included."""
    from lems.wire.secrets import mask

    return mask


def _when(text: str) -> object:
    try:
        return _journal().parse_when(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


HELP = "the audit journal: search, verify, export, dissemination"
DESCRIPTION = "Search, verify and export the audit journal."


def register(subparsers: argparse._SubParsersAction) -> None:
    """``lems audit [--home DIR] ACTION [--home DIR] ...``: the home before or after the action.

    PROTOCOL.md appendix B writes ``lems audit verify --home DIR``; the action's
    own ``--home`` leaves the one before it alone unless it is given.
    """
    p = subparsers.add_parser("audit", help=HELP, description=DESCRIPTION)
    add_home(p)
    add_actions(p, home_after=True)
    p.set_defaults(func=run)


def add_actions(parser: argparse.ArgumentParser, home_after: bool = False) -> None:
    sub = parser.add_subparsers(dest="action", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        if home_after:
            add_home(p, default=argparse.SUPPRESS)
        return p

    def window(p: argparse.ArgumentParser) -> None:
        p.add_argument("--since", type=_when, help="from this UTC date or time (CCYYMMDD or ISO 8601), inclusive")
        p.add_argument("--until", type=_when, help="up to this UTC date or time (CCYYMMDD or ISO 8601), inclusive")

    action("verify", "check the hash chains; exit 1 naming the first bad record")

    search = action("search", "journal records, newest LIMIT shown oldest first")
    window(search)
    search.add_argument("--ori")
    search.add_argument("--terminal")
    search.add_argument("--operator")
    search.add_argument("--mke", help="message key, e.g. QW")
    # A metavar of its own: argparse would list the choices (import the journal) while building the tree.
    search.add_argument("--kind", choices=LazyChoices(lambda: sorted(_journal().KINDS)), metavar="KIND",
                        help="record kind: %(choices)s")
    search.add_argument("--text", help="substring of the message text (case-insensitive)")
    search.add_argument("--limit", type=int, default=100)
    search.add_argument("--full", action="store_true", help="do not shorten message text")

    export = action("export", "in/out frames as a replay capture (JSON Lines)")
    window(export)
    export.add_argument("--out", help="file to write (default: standard output)")

    dissem = action("dissemination", "the criminal history dissemination log")
    window(dissem)
    dissem.add_argument("--ori")
    dissem.add_argument("--operator")
    dissem.add_argument("--subject")
    dissem.add_argument("--limit", type=int, default=100)


def run(args: argparse.Namespace) -> int:
    from lems.base.conf import Settings

    return execute(args, Settings.load(home_of(args)).store_path)


def main(argv: Sequence[str], store_path: Path) -> int:
    """The actions on one store, without the ``lems`` tree (the tests' way in)."""
    parser = argparse.ArgumentParser(prog="lems audit", description=DESCRIPTION)
    add_actions(parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse has already printed the usage error
        return EXIT_USAGE if exc.code else EXIT_OK
    return execute(args, store_path)


def execute(args: argparse.Namespace, store_path: Path) -> int:
    try:
        conn = connect_ro(store_path)
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"lems audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.store_path = Path(store_path).resolve()  # verify looks for the signed head file beside it
    try:
        return COMMANDS[args.action](conn, args)
    except sqlite3.Error as exc:
        print(f"lems audit: cannot read the journal in {store_path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        conn.close()


def cmd_verify(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    result = _journal().verify(conn, getattr(args, "store_path", None))
    if result.ok:
        print(f"OK {result.checked} records")
        print(f"dissemination log: OK {result.disseminations} records")
        print(f"head: record {result.head_seq} hash {result.head_hash}")
        if result.head_note:
            print(result.head_note)
        return EXIT_OK
    if result.bad_seq is None:
        print(f"FAILED: {result.reason} ({result.detail})")
    else:
        print(f"FAILED: {result.table} record {result.bad_seq} {result.reason} ({result.detail})")
    print(f"{result.checked} journal records verified before it")
    return EXIT_BAD


def _stamp(ts: str) -> str:
    return f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]} {ts[8:10]}:{ts[10:12]}:{ts[12:14]}.{ts[14:16]}"


def _short(text: Optional[str], full: bool) -> str:
    flat = (text or "").replace("\r", "").replace("\n", " | ")
    return flat if full or len(flat) <= TEXT_WIDTH else flat[:TEXT_WIDTH - 3] + "..."


def cmd_search(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    records = _journal().search(conn, since=args.since, until=args.until, ori=args.ori, terminal=args.terminal,
                             operator=args.operator, mke=args.mke, text=args.text, kind=args.kind, limit=args.limit,
                             redact=_redact())
    print(f"{'SEQ':>8} {'TIME (UTC)':<22} {'KIND':<8} {'TERMINAL':<8} {'ORI':<9} {'OPERATOR':<8} C "
          f"{'KEY/EVENT':<16} {'OUTCOME':<7} {'REF':<10} TEXT")
    for r in records:
        what = r.event if r.kind in ("security", "admin") else r.mke
        text = _short(r.text, args.full)
        if r.kind == "security" and r.remote:
            text = f"FROM {r.remote} {text}"
        line = (f"{r.seq:>8} {_stamp(r.ts):<22} {r.kind:<8} {r.terminal or '-':<8} {r.ori or '-':<9} "
                f"{r.operator or '-':<8} {r.cls or '-'} {(what or '-')[:16]:<16} {r.outcome or '-':<7} "
                f"{(r.ref or '').strip() or '-':<10} {text}")
        print(line.rstrip())
    print(f"{len(records)} records", file=sys.stderr)
    return EXIT_OK


def cmd_export(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    if args.out:
        with open(args.out, "w", encoding="ascii", newline="\n") as out_file:
            count = _journal().export(conn, out_file, since=args.since, until=args.until, redact=_redact())
    else:
        count = _journal().export(conn, sys.stdout, since=args.since, until=args.until, redact=_redact())
    print(f"{count} frames exported", file=sys.stderr)
    return EXIT_OK


def cmd_dissemination(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    records = _journal().search_disseminations(conn, since=args.since, until=args.until, ori=args.ori,
                                            operator=args.operator, subject=args.subject, limit=args.limit)
    print(f"{'SEQ':>8} {'TIME (UTC)':<22} {'OPERATOR':<8} {'ORI':<9} {'TERMINAL':<8} {'KEY':<4} PUR "
          f"{'JOURNAL':>8} {'ATTENTION':<30} SUBJECT")
    for r in records:
        journal_seq = str(r.journal_seq) if r.journal_seq is not None else "-"
        print(f"{r.seq:>8} {_stamp(r.ts):<22} {r.operator or '-':<8} {r.ori or '-':<9} {r.terminal or '-':<8} "
              f"{r.mke or '-':<4} {r.pur or '-':<3} {journal_seq:>8} {r.atn or '-':<30} {r.subject or '-'}")
    print(f"{len(records)} records", file=sys.stderr)
    return EXIT_OK


COMMANDS = {"verify": cmd_verify, "search": cmd_search, "export": cmd_export, "dissemination": cmd_dissemination}
