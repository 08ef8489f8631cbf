"""``lems ppf load FILE --ori ORI [--home DIR]``: a designated agency's first file (PROTOCOL.md 9).

The agency's whole file of current and former clients, one person a row::

    NAM,DOB,SEX,RAC,SOC,PPT,ISD,OCA
    "ROE, RICHARD",19750505,M,W,999000009,COMMITMENT,20231101,OHA-23-0001
    "PUBLIC, JANE Q",19660202,F,W,,GEI,20190315,OHA-19-0042

CSV, UTF-8 (a byte order mark is allowed), a header row of field codes: the
minimum information of EPP (NAM, DOB and SEX required; COR, RAC, SOC, OLN with
OLS, PPT, ISD, OCA optional), in any order.  Rows are numbered as a spreadsheet
shows them: the header is row 1.  Blank rows are skipped.

1. Every row is checked first, exactly as an EPP from the agency would be
   (lems.wire.codec: formats, codes, lengths, minimum information).  If any row
   is bad, nothing is loaded: each bad row is listed on stderr with its number and
   reason, and the exit status is 1.
2. Otherwise every row is entered in one store transaction through the PPF's
   record handler (each gets a NIC); a row that duplicates a record on file (the
   same NAM and DOB from the same agency, also an earlier row of the same file)
   is reported and skipped.  The rows are pending transmission to NICS.
3. The transaction also announces the load (lems.store.record_change), so a
   switch running on the home takes the records at once (before its next PPF
   message, and within a second in any case) and journals the load.

A progress bar goes to stderr when it is a terminal and the file has 1,000 rows
or more; the summary goes to stdout.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any, Optional, TextIO

from lems.tools.args import EXIT_OK, EXIT_REJECT, add_home, fail, home_of

KEY = "EPP"
PROGRESS_FROM = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ppf", help="the prohibited persons file (PROTOCOL.md 9)")
    actions = p.add_subparsers(dest="ppf_command", required=True, metavar="ACTION")
    q = actions.add_parser("load", help="load a designated agency's first file (CSV, UTF-8, a header row of "
                                        "field codes): every row checked first, all or nothing")
    q.add_argument("file", help="the CSV file")
    q.add_argument("--ori", required=True, help="the designated agency whose file it is")
    add_home(q)
    q.set_defaults(func=run_load)


class Progress:
    """``[#####-----]  52% 52000/100000 checking`` on a terminal, rewritten in place."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.on = total >= PROGRESS_FROM and stream.isatty()
        self.shown = -1

    def __call__(self, done: int, what: str) -> None:
        if not self.on:
            return
        percent = done * 100 // max(self.total, 1)
        if percent == self.shown and done != self.total:
            return
        self.shown = percent
        bar = "#" * (percent // 4) + "-" * (25 - percent // 4)
        self.stream.write(f"\r[{bar}] {percent:3d}% {done}/{self.total} {what:<9}")
        self.stream.flush()

    def end(self) -> None:
        if self.on:
            self.stream.write("\n")
            self.stream.flush()


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header's codes and the data rows with their numbers (the header is row 1)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError("the file is empty: it needs a header row of field codes") from None
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    return [code.strip().upper() for code in header], rows


def check_header(header: list[str], spec: Any) -> list[str]:
    problems = []
    other = spec.other_fields or "{code} IS NOT A FIELD OF " + spec.mke
    seen = set()
    for code in header:
        if not code:
            problems.append("header: a column has no field code")
        elif code in seen:
            problems.append(f"header: {code} is given twice")
        elif code not in spec.fields or code == "NIC":
            problems.append(f"header: {other.format(code=code)}")
        seen.add(code)
    for needed in ("NAM", "DOB", "SEX"):
        if needed not in header:
            problems.append(f"header: {needed} is required")
    return problems


def row_message(codec: Any, ori: str, header: list[str], number: int, row: list[str]) -> tuple[Any, Optional[str]]:
    """The EPP a row makes, or why the row is bad."""
    from lems.base.errors import Reject

    if len(row) != len(header):
        return None, f"row {number}: {len(row)} values for {len(header)} columns"
    parts = []
    for code, raw in zip(header, row):
        value = raw.strip()
        if not value:
            continue
        bad = next((ch for ch in value if not (" " <= ch <= "~")), None)
        if bad is not None:
            return None, f"row {number}: {code} has a character the switch cannot take ({bad!r}; printable ASCII only)"
        if "." in value:
            return None, f"row {number}: {code} must not contain a period"
        parts.append(f"{code}/{value}")
    try:
        return codec.parse(".".join([KEY, ori, *parts])), None
    except Reject as exc:
        return None, f"row {number}: {exc.code} {exc.reason}"


def run_load(args: argparse.Namespace) -> int:
    import gc

    # Hundreds of thousands of small objects that live until the end: the cyclic collector's
    # full passes over them made a 100,000-row load several times slower; none of them is a cycle.
    import sqlite3

    gc.disable()
    try:
        return _load(args)
    except sqlite3.OperationalError as exc:  # the store stayed locked past the wait, or the disk is full
        return fail(f"the store refused the load ({exc}); nothing loaded", EXIT_REJECT)
    finally:
        gc.enable()


def _load(args: argparse.Namespace) -> int:
    from lems.base.clock import SystemClock, stamp
    from lems.base.conf import Settings
    from lems.base.registry import Registry
    from lems.core.policy import Policy
    from lems.files.handlers import OnFile
    from lems.store import Store, record_change, switch_time
    from lems.traffic import ppf
    from lems.traffic.routes import RouteError, RouteTable, load_handlers
    from lems.wire.catalogue import CatalogueError
    from lems.wire.codec import Codec

    home = home_of(args)
    settings = Settings.load(home)
    registry = Registry.load(home / "terminals")
    ori = args.ori.strip().upper()
    agency = registry.agency(ori)
    if agency is None:
        return fail(f"no agency {ori} in {home / 'terminals'}", EXIT_REJECT)
    if not agency.designated:
        return fail(f"{ori} IS NOT A DESIGNATED AGENCY FOR THE PROHIBITED PERSONS FILE; nothing loaded", EXIT_REJECT)
    if agency.status != "active":
        return fail(f"AGENCY {ori} IS {agency.status.upper()}; nothing loaded", EXIT_REJECT)
    path = Path(args.file)
    try:
        codec = Codec.from_dir(home / "formats")
        header, rows = read_rows(path)
    except (CatalogueError, OSError) as exc:
        return fail(str(exc), EXIT_REJECT)
    except UnicodeDecodeError as exc:
        return fail(f"{path}: not UTF-8 (byte {exc.start + 1}); nothing loaded", EXIT_REJECT)
    except (ValueError, csv.Error) as exc:
        return fail(f"{path}: {exc}; nothing loaded", EXIT_REJECT)
    started = time.monotonic()
    problems = check_header(header, codec.spec(KEY))
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return fail(f"{path}: the header is wrong; nothing loaded", EXIT_REJECT)
    progress = Progress(len(rows))
    messages: list[tuple[int, Any]] = []
    bad: list[str] = []
    for done, (number, row) in enumerate(rows, 1):
        msg, problem = row_message(codec, ori, header, number, row)
        if problem:
            bad.append(problem)
        else:
            if not msg.has("COR"):
                import attrs

                msg = attrs.evolve(msg, fields=msg.fields + (("COR", ori),))
            messages.append((number, msg))
        progress(done, "checked")
    progress.end()
    if bad:
        for line in bad:
            print(line, file=sys.stderr)
        return fail(f"{path}: {len(bad)} bad row(s) of {len(rows)}; nothing loaded", EXIT_REJECT)
    if not messages:
        return fail(f"{path}: no rows to load", EXIT_REJECT)

    store = Store.open(settings.store_path)
    try:
        store.conn.execute("PRAGMA busy_timeout = 60000")  # a running switch holds the lock for one turn at most
        clock = switch_time.switch_clock(store.conn, settings.clock.adjustable, SystemClock())
        problem = Policy(settings, clock).agreement_problem(agency)
        if problem:
            return fail(f"{problem}; nothing loaded", EXIT_REJECT)
        try:
            table = RouteTable.load(home / "routes" / "routes.toml")
            route = table.maintenance.get(ppf.FILE)
            if route is None:
                return fail("routes/routes.toml takes no prohibited person entries; nothing loaded", EXIT_REJECT)
            handler = load_handlers(home, table, settings, codec, store, clock)[route.handler]
        except RouteError as exc:
            return fail(f"{exc}; nothing loaded", EXIT_REJECT)
        at = clock.now()
        checked = time.monotonic()
        conn = store.write()
        # The first statement writes: the load holds the store's write lock from here to its commit.
        load_id = conn.execute("INSERT INTO ppf_load (at, ori, source, entered, skipped) VALUES (?, ?, ?, 0, 0)",
                               (at.isoformat(), ori, str(path.resolve()))).lastrowid
        entered: list[tuple[str, str]] = []
        skipped: list[str] = []
        progress = Progress(len(messages))
        try:
            for done, (number, msg) in enumerate(messages, 1):
                try:
                    record = handler.enter(msg, ppf.FILE, route.record_set)
                except OnFile as exc:
                    skipped.append(f"row {number}: {msg.get('NAM')} {msg.get('DOB')} is on file as "
                                   f"NIC/{exc.record.nic} - skipped")
                else:
                    entered.append((record.nic, record.ori))
                progress(done, "entered")
            ppf.mark_pending(conn, entered, "enter", at.isoformat())
            first, last = (entered[0][0], entered[-1][0]) if entered else (None, None)
            conn.execute("UPDATE ppf_load SET entered = ?, skipped = ?, first_nic = ?, last_nic = ? WHERE id = ?",
                         (len(entered), len(skipped), first, last, load_id))
            record_change.announce(conn, f"PPF LOAD {ori} {len(entered)} RECORDS", stamp(at))
            store.commit()
            held = time.monotonic() - checked
        except BaseException:
            store.rollback()
            progress.end()
            raise
        progress.end()
    finally:
        store.close()
    for line in skipped:
        print(line)
    span = f" (NIC/{entered[0][0]} to NIC/{entered[-1][0]})" if entered else ""
    print(f"{path}: {len(rows)} rows for {ori}: {len(entered)} entered{span}, {len(skipped)} duplicate(s) skipped, "
          f"pending transmission to NICS; {time.monotonic() - started:.1f} s ({held:.1f} s in the store transaction)")
    return EXIT_OK
