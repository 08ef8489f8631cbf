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

from lems.store import journal

EXIT_OK, EXIT_BAD, EXIT_USAGE = 0, 1, 2
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


def _when(text: str) -> object:
    try:
        return journal.parse_when(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lems audit", description="Search, verify and export the audit journal.")
    sub = parser.add_subparsers(dest="command", required=True)

    def window(p: argparse.ArgumentParser) -> None:
        p.add_argument("--since", type=_when, help="from this UTC date or time (CCYYMMDD or ISO 8601), inclusive")
        p.add_argument("--until", type=_when, help="up to this UTC date or time (CCYYMMDD or ISO 8601), inclusive")

    sub.add_parser("verify", help="check the hash chains; exit 1 naming the first bad record")

    search = sub.add_parser("search", help="journal records, newest LIMIT shown oldest first")
    window(search)
    search.add_argument("--ori")
    search.add_argument("--terminal")
    search.add_argument("--operator")
    search.add_argument("--mke", help="message key, e.g. QW")
    search.add_argument("--kind", choices=sorted(journal.KINDS))
    search.add_argument("--text", help="substring of the message text (case-insensitive)")
    search.add_argument("--limit", type=int, default=100)
    search.add_argument("--full", action="store_true", help="do not shorten message text")

    export = sub.add_parser("export", help="in/out frames as a replay capture (JSON Lines)")
    window(export)
    export.add_argument("--out", help="file to write (default: standard output)")

    dissem = sub.add_parser("dissemination", help="the criminal history dissemination log")
    window(dissem)
    dissem.add_argument("--ori")
    dissem.add_argument("--operator")
    dissem.add_argument("--subject")
    dissem.add_argument("--limit", type=int, default=100)
    return parser


def main(argv: Sequence[str], store_path: Path) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse has already printed the usage error
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        conn = connect_ro(store_path)
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"lems audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](conn, args)
    except sqlite3.Error as exc:
        print(f"lems audit: cannot read the journal in {store_path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        conn.close()


def cmd_verify(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    result = journal.verify(conn)
    if result.ok:
        print(f"OK {result.checked} records")
        print(f"dissemination log: OK {result.disseminations} records")
        print(f"head: record {result.head_seq} hash {result.head_hash}")
        return EXIT_OK
    print(f"FAILED: {result.table} record {result.bad_seq} {result.reason} ({result.detail})")
    print(f"{result.checked} journal records verified before it")
    return EXIT_BAD


def _stamp(ts: str) -> str:
    return f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]} {ts[8:10]}:{ts[10:12]}:{ts[12:14]}.{ts[14:16]}"


def _short(text: Optional[str], full: bool) -> str:
    flat = (text or "").replace("\r", "").replace("\n", " | ")
    return flat if full or len(flat) <= TEXT_WIDTH else flat[:TEXT_WIDTH - 3] + "..."


def cmd_search(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    records = journal.search(conn, since=args.since, until=args.until, ori=args.ori, terminal=args.terminal,
                             operator=args.operator, mke=args.mke, text=args.text, kind=args.kind, limit=args.limit)
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
            count = journal.export(conn, out_file, since=args.since, until=args.until)
    else:
        count = journal.export(conn, sys.stdout, since=args.since, until=args.until)
    print(f"{count} frames exported", file=sys.stderr)
    return EXIT_OK


def cmd_dissemination(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    records = journal.search_disseminations(conn, since=args.since, until=args.until, ori=args.ori,
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
