"""Reading the journal back: search, the dissemination log, export as a capture.

Read-only: these run on the switch's connection (the console) or on a read-only
one while the switch runs (``lems audit``).

What is shown is not always what is stored.  A caller that shows or exports
the journal passes ``redact`` (``lems.wire.secrets.mask``, which this layer
cannot import): every text that carries a terminal's input (``in`` records and
``E`` frames, whose echo repeats the input) is shown through it, and ``search``'s text filter
matches the redacted text, so a journal written before sign-on secrets were
masked shows ``PWD/*`` and cannot be searched for a password either.  The rows
themselves are never rewritten (the hash chain vouches for them as written).
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from typing import IO, Any, Callable, Iterator, Optional, Union

import attrs

from lems.base.clock import UTC, stamp
from lems.store.chain import DISSEMINATION, JOURNAL

When = Union[_dt.datetime, _dt.date, str, None]
Redact = Callable[[Optional[str]], Optional[str]]


def _input_bearing(kind: str, cls: Optional[str]) -> bool:
    """Records whose text holds what a terminal sent: the input itself, or an error echo of it.
    (Not the banner, which documents ``PWD/<PASSWORD>`` and is not a secret.)"""
    return kind == "in" or cls == "E"


@attrs.frozen
class Record:
    """One journal record as stored."""

    seq: int
    ts: str
    kind: str
    terminal: Optional[str]
    ori: Optional[str]
    operator: Optional[str]
    session: Optional[str]
    remote: Optional[str]
    mke: Optional[str]
    dests: Optional[str]
    ref: Optional[str]
    control: Optional[str]
    cls: Optional[str]
    outcome: Optional[str]
    bytes: Optional[int]
    osn: Optional[int]
    text: Optional[str]
    event: Optional[str]
    prev: str
    hash: str

    COLUMNS = ("seq", *JOURNAL.columns, "prev", "hash")

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "Record":
        return cls(*row)

    @property
    def time(self) -> _dt.datetime:
        return parse_stamp(self.ts)


@attrs.frozen
class Dissemination:
    """One dissemination log record as stored."""

    seq: int
    ts: str
    operator: Optional[str]
    ori: Optional[str]
    terminal: Optional[str]
    mke: Optional[str]
    atn: Optional[str]
    pur: Optional[str]
    subject: Optional[str]
    journal_seq: Optional[int]
    prev: str
    hash: str

    COLUMNS = ("seq", *DISSEMINATION.columns, "prev", "hash")

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "Dissemination":
        return cls(*row)


def parse_stamp(ts: str) -> _dt.datetime:
    """CCYYMMDDhhmmssff (UTC) to an aware datetime."""
    moment = _dt.datetime.strptime(ts[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment + _dt.timedelta(milliseconds=10 * int(ts[14:16] or 0))


def _bound(when: When, end: bool) -> Optional[str]:
    """A stamp bound: ``since`` inclusive; ``until`` exclusive just after it
    (a date means through the end of that day, a datetime through that hundredth)."""
    if when is None:
        return None
    if isinstance(when, str):
        when = parse_when(when)
    if isinstance(when, _dt.datetime):
        moment = when if when.tzinfo else when.replace(tzinfo=UTC)
        return stamp(moment + _dt.timedelta(milliseconds=10)) if end else stamp(moment)
    day = when + _dt.timedelta(days=1) if end else when
    return day.strftime("%Y%m%d") + "00000000"


def parse_when(text: str) -> Union[_dt.datetime, _dt.date]:
    """CCYYMMDD[hhmm[ss[ff]]] or ISO 8601 (date, or date and time; naive means UTC)."""
    text = text.strip()
    if text.isdigit() and len(text) in (8, 12, 14, 16):
        if len(text) == 8:
            return _dt.datetime.strptime(text, "%Y%m%d").date()
        return parse_stamp(text.ljust(16, "0"))
    try:
        if len(text) == 10:
            return _dt.date.fromisoformat(text)
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date or time: {text!r} (use CCYYMMDD or ISO 8601)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(since: When, until: When, filters: dict[str, Optional[str]], text: Optional[str]
           ) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in filters.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    lo, hi = _bound(since, end=False), _bound(until, end=True)
    if lo is not None:
        clauses.append("ts >= ?")
        params.append(lo)
    if hi is not None:
        clauses.append("ts < ?")
        params.append(hi)
    if text:
        clauses.append("text LIKE ? ESCAPE '\\'")
        params.append(_like(text))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def search(conn: sqlite3.Connection, since: When = None, until: When = None, ori: Optional[str] = None,
           terminal: Optional[str] = None, operator: Optional[str] = None, mke: Optional[str] = None,
           text: Optional[str] = None, kind: Optional[str] = None, limit: int = 100,
           redact: Optional[Redact] = None) -> list[Record]:
    """The newest ``limit`` matching records, oldest first.

    ORI, terminal, operator and key each have an index led by that column and
    followed by the time, so a filtered search reads only its own records; the
    text filter (a case-insensitive substring) only narrows what those select.
    With ``redact``, each record's text is the redacted text, and the text filter
    must match that too (the rows the SQL finds are checked again).
    """
    upper = {"ori": ori, "terminal": terminal, "operator": operator, "mke": mke}
    filters = {k: v.upper() if v else None for k, v in upper.items()}
    filters["kind"] = kind
    where, params = _where(since, until, filters, text)
    sql = f"SELECT {', '.join(Record.COLUMNS)} FROM journal{where} ORDER BY ts DESC, seq DESC"
    if redact is None:
        rows = conn.execute(sql + " LIMIT ?", (*params, int(limit))).fetchall()
        return [Record.from_row(row) for row in reversed(rows)]
    found: list[Record] = []
    wanted = text.lower() if text else None
    for row in conn.execute(sql, params):
        if len(found) >= int(limit):
            break
        record = Record.from_row(row)
        shown = redact(record.text) if _input_bearing(record.kind, record.cls) else record.text
        if wanted is not None and wanted not in (shown or "").lower():
            continue
        found.append(record if shown == record.text else attrs.evolve(record, text=shown))
    return found[::-1]


def search_disseminations(conn: sqlite3.Connection, since: When = None, until: When = None,
                          ori: Optional[str] = None, operator: Optional[str] = None,
                          subject: Optional[str] = None, limit: int = 100) -> list[Dissemination]:
    """The newest ``limit`` matching dissemination records, oldest first."""
    filters = {"ori": ori, "operator": operator, "subject": subject}
    where, params = _where(since, until, {k: v.upper() if v else None for k, v in filters.items()}, None)
    rows = conn.execute(f"SELECT {', '.join(Dissemination.COLUMNS)} FROM dissemination{where} "
                        "ORDER BY ts DESC, seq DESC LIMIT ?", (*params, int(limit))).fetchall()
    return [Dissemination.from_row(row) for row in reversed(rows)]


def frames(conn: sqlite3.Connection, since: When = None, until: When = None,
           redact: Optional[Redact] = None) -> Iterator[dict[str, Any]]:
    """``in`` and ``out`` records in switch order as replay capture objects (PROTOCOL.md 7),
    each text through ``redact`` when it is given.

    ``t`` counts from the first exported frame, in hundredths like the stamps, and
    never goes back (a clock stepped backwards would otherwise make a negative pause).
    """
    where, params = _where(since, until, {}, None)
    where = (where + " AND" if where else " WHERE") + " kind IN ('in', 'out')"
    first: Optional[_dt.datetime] = None
    last_t = 0.0
    for ts, terminal, kind, ref, cls, text in conn.execute(
            f"SELECT ts, terminal, kind, ref, cls, text FROM journal{where} ORDER BY seq", params):
        moment = parse_stamp(ts)
        if first is None:
            first = moment
        last_t = max(last_t, round((moment - first).total_seconds(), 2))
        yield {"t": last_t, "terminal": terminal, "dir": kind, "ref": ref or "",
               "cls": cls if kind == "out" else None,
               "text": (redact(text) if redact and _input_bearing(kind, cls) else text) or ""}


def export(conn: sqlite3.Connection, out_file: IO[str], since: When = None, until: When = None,
           redact: Optional[Redact] = None) -> int:
    """Write ``frames`` (through ``redact``) as JSON Lines to ``out_file``; returns how many were written."""
    count = 0
    for frame in frames(conn, since, until, redact):
        out_file.write(json.dumps(frame, ensure_ascii=True) + "\n")
        count += 1
    return count
