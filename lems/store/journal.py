"""The audit journal: every frame in and out, every security and console event.

The journal is data that must never be lost or quietly changed (CJIS-style
transaction log), so it lives in the switch's SQLite store and each record is
hash-chained to its predecessor:

    prev = hash of the preceding record (GENESIS for the first one)
    hash = sha256(canonical([prev, ts, kind, terminal, ..., event])).hexdigest()

``canonical`` is ``json.dumps(list, separators=(",", ":"), ensure_ascii=True)``
over the content columns in ``JOURNAL.columns`` order, so anyone can re-check a
journal with a few lines of any language.  The sequence number is not hashed:
order is bound by the chain itself, and ``verify`` checks that sequence numbers
run without gaps from the retention anchor (or 1) up to the highest number
SQLite ever handed out (``sqlite_sequence``, so removing the newest records is
seen too).

The dissemination log for criminal history inquiries is a second table with a
chain of its own (same rules, its own genesis and anchor), so the journal chain
is untouched by it and each can be pruned and verified on its own.

Limits, stated plainly: a keyless chain shows edits, deletions and reorders done
by anyone who does not also recompute every later hash.  ``verify`` reports the
head (sequence number and hash); recording it elsewhere from time to time turns
a full rewrite into a detectable one.  One process writes a store at a time.

Appends never commit: the switch commits once per reactor turn (group commit)
before any reply leaves.  A rolled-back turn is noticed at the next append
(SQLite hands out a lower sequence number than expected) and that record is
relinked to its real predecessor, so the chain survives rollbacks.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
from typing import IO, Any, Iterable, Iterator, Optional, Union

import attrs
import structlog

from lems.base.clock import UTC, stamp

GENESIS = "0" * 64
RETENTION_FLOOR_DAYS = 365
KINDS = frozenset({"in", "out", "security", "admin"})
CLASSES = frozenset({"R", "U", "S", "E"})


log = structlog.get_logger("lems.store.journal")


@attrs.frozen
class Chain:
    """One hash-chained table: its name, hashed columns and integer columns."""

    table: str
    columns: tuple[str, ...]
    ints: frozenset[str]

    @property
    def insert_sql(self) -> str:
        names = ", ".join(self.columns)
        marks = ", ".join("?" * (len(self.columns) + 2))
        return f"INSERT INTO {self.table} ({names}, prev, hash) VALUES ({marks})"


JOURNAL = Chain("journal", ("ts", "kind", "terminal", "ori", "operator", "session", "remote", "mke", "dests",
                            "ref", "control", "cls", "outcome", "bytes", "osn", "text", "event"),
                frozenset({"bytes", "osn"}))
DISSEMINATION = Chain("dissemination", ("ts", "operator", "ori", "terminal", "mke", "atn", "pur", "subject",
                                        "journal_seq"),
                      frozenset({"journal_seq"}))
CHAINS = (JOURNAL, DISSEMINATION)

# Fields a caller may give to append (everything but the clock's time); nbytes is
# accepted for bytes because the session code names its length that way.
_FIELDS = frozenset(JOURNAL.columns) - {"ts", "kind"}
_ALIASES = {"nbytes": "bytes"}


def _blob(value: Any) -> Any:
    # Only a tampered row holds a blob; give it a form that can never match text.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"blob": bytes(value).hex()}
    raise TypeError(f"unexpected value {value!r}")


_CANONICAL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=_blob)


def digest(prev: str, values: Iterable[Any]) -> str:
    """The record hash: SHA-256 over the canonical JSON of [prev, *content]."""
    return hashlib.sha256(_CANONICAL.encode([prev, *values]).encode("ascii")).hexdigest()


def _text(value: Any) -> Optional[str]:
    if value is None or type(value) is str:
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _head(conn: sqlite3.Connection, chain: Chain) -> tuple[int, str]:
    row = conn.execute(f"SELECT seq, hash FROM {chain.table} ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return row[0], row[1]
    return _anchor(conn, chain)


def _anchor(conn: sqlite3.Connection, chain: Chain) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM journal_anchor WHERE chain = ?", (chain.table,)).fetchone()
    return (row[0], row[1]) if row is not None else (0, GENESIS)


class _Writer:
    """Appends to one chain, keeping its head in memory (no SELECT per append)."""

    def __init__(self, conn: sqlite3.Connection, chain: Chain) -> None:
        self.conn = conn
        self.chain = chain
        self.sql = chain.insert_sql
        self.seq, self.hash = _head(conn, chain)

    def append(self, values: tuple[Any, ...]) -> int:
        prev = self.hash
        record_hash = digest(prev, values)
        seq = self.conn.execute(self.sql, (*values, prev, record_hash)).lastrowid
        if seq != self.seq + 1:
            # Our last appends were rolled back (or the store changed under us):
            # link this record to the predecessor that is really there.
            prev = self._hash_before(seq)
            record_hash = digest(prev, values)
            self.conn.execute(f"UPDATE {self.chain.table} SET prev = ?, hash = ? WHERE seq = ?",
                              (prev, record_hash, seq))
        self.seq, self.hash = seq, record_hash
        return seq

    def _hash_before(self, seq: int) -> str:
        row = self.conn.execute(f"SELECT hash FROM {self.chain.table} WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                                (seq,)).fetchone()
        return row[0] if row is not None else _anchor(self.conn, self.chain)[1]


class Journal:
    """The switch's audit journal on the store's connection (appends never commit)."""

    def __init__(self, conn: sqlite3.Connection, clock: Any) -> None:
        self.conn = conn
        self.clock = clock
        self._journal = _Writer(conn, JOURNAL)
        self._dissemination = _Writer(conn, DISSEMINATION)

    @property
    def head(self) -> tuple[int, str]:
        """Sequence number and hash of the newest journal record (0 and GENESIS when empty)."""
        return self._journal.seq, self._journal.hash

    def append(self, kind: str, **fields: Any) -> int:
        """Add one record inside the caller's transaction; returns its sequence number."""
        if kind not in KINDS:
            raise ValueError(f"unknown journal kind {kind!r}")
        for alias, name in _ALIASES.items():
            if alias in fields:
                fields[name] = fields.pop(alias)
        unknown = fields.keys() - _FIELDS
        if unknown:
            raise TypeError(f"unknown journal fields: {', '.join(sorted(unknown))}")
        cls = fields.get("cls")
        if cls is not None and cls not in CLASSES:
            raise ValueError(f"invalid output class {cls!r}")
        get = fields.get
        # Same order as JOURNAL.columns (spelled out: this is the hot path).
        values = (stamp(self.clock.now()), kind, _text(get("terminal")), _text(get("ori")),
                  _text(get("operator")), _text(get("session")), _text(get("remote")), _text(get("mke")),
                  _text(get("dests")), _text(get("ref")), _text(get("control")), cls, _text(get("outcome")),
                  _int(get("bytes")), _int(get("osn")), _text(get("text")), _text(get("event")))
        return self._journal.append(values)

    def disseminate(self, operator: Optional[str], ori: Optional[str], terminal: Optional[str], mke: Optional[str],
                    atn: Optional[str], pur: Optional[str], subject: Optional[str],
                    journal_seq: Optional[int] = None) -> int:
        """Log one criminal history inquiry.  Without ``journal_seq`` it refers to the
        newest journal record, the ``in`` record of the inquiry being handled."""
        if journal_seq is None and self._journal.seq:
            journal_seq = self._journal.seq
        values = (stamp(self.clock.now()), _text(operator), _text(ori), _text(terminal), _text(mke), _text(atn),
                  _text(pur), _text(subject), _int(journal_seq))
        return self._dissemination.append(values)


def _int(value: Any) -> Optional[int]:
    return value if value is None or type(value) is int else int(value)


# -- verification -------------------------------------------------------------------

@attrs.frozen
class VerifyResult:
    """Outcome of ``verify``: either ok, or the first bad record and why.

    ``reason`` is one of ``edited`` (content, prev or hash changed), ``removed``
    (a gap in the sequence numbers, ``bad_seq`` is the first missing one),
    ``reordered`` (the record belongs elsewhere in the chain) and ``chain broken``
    (its predecessor is not the record it was chained to: that one was altered and
    re-hashed, or records were removed and the rest renumbered).
    """

    ok: bool
    checked: int                       # journal records checked
    disseminations: int = 0            # dissemination records checked
    table: Optional[str] = None        # journal or dissemination, when not ok
    bad_seq: Optional[int] = None
    reason: Optional[str] = None
    detail: str = ""
    head_seq: int = 0                  # newest journal record (for an outside witness)
    head_hash: str = GENESIS


@attrs.frozen
class _ChainCheck:
    checked: int
    last_seq: int
    last_hash: str
    bad_seq: Optional[int] = None
    reason: Optional[str] = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def _check(conn: sqlite3.Connection, chain: Chain, upto: Optional[int] = None) -> _ChainCheck:
    """Walk one chain from its anchor in sequence order (up to ``upto`` inclusive)."""
    text_factory = conn.text_factory
    # A byte changed on disk can leave text that is not UTF-8: read it anyway so it
    # fails its hash instead of stopping the check.
    conn.text_factory = _lenient_text
    try:
        return _walk(conn, chain, upto)
    finally:
        conn.text_factory = text_factory


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _walk(conn: sqlite3.Connection, chain: Chain, upto: Optional[int]) -> _ChainCheck:
    table = chain.table
    exp_seq, exp_prev = _anchor(conn, chain)
    exp_seq += 1
    checked = 0
    sql = f"SELECT seq, {', '.join(chain.columns)}, prev, hash FROM {table}"
    rows = conn.execute(sql + " ORDER BY seq") if upto is None else \
        conn.execute(sql + " WHERE seq <= ? ORDER BY seq", (upto,))

    def bad(seq: int, reason: str, detail: str) -> _ChainCheck:
        return _ChainCheck(checked, exp_seq - 1, exp_prev, seq, reason, detail)

    for seq, *values, prev, stored in rows:
        if seq < exp_seq:
            return bad(seq, "chain broken", f"record {seq} lies before the retention anchor {exp_seq - 1}")
        if seq > exp_seq:
            missing = str(exp_seq) if seq == exp_seq + 1 else f"{exp_seq}-{seq - 1}"
            return bad(exp_seq, "removed", f"record {missing} missing before record {seq}")
        if not isinstance(prev, str) or not isinstance(stored, str) or digest(prev, values) != stored:
            return bad(seq, "edited", "stored hash does not match the record's content")
        if prev != exp_prev:
            return bad(seq, *_misplaced(conn, table, seq, prev, exp_prev))
        exp_seq, exp_prev = seq + 1, stored
        checked += 1
    if upto is None:
        # Taking records off the end leaves no gap behind them; SQLite's own counter does.
        top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        if top is not None and isinstance(top[0], int) and top[0] >= exp_seq:
            missing = str(exp_seq) if top[0] == exp_seq else f"{exp_seq}-{top[0]}"
            return bad(exp_seq, "removed", f"record {missing} missing at the end")
    elif exp_seq <= upto:
        return bad(exp_seq, "removed", f"record {exp_seq}-{upto} missing")
    return _ChainCheck(checked, exp_seq - 1, exp_prev)


def _misplaced(conn: sqlite3.Connection, table: str, seq: int, prev: str, exp_prev: str) -> tuple[str, str]:
    # Only reached on a failure, so these unindexed look-ups cost nothing normally.
    row = conn.execute(f"SELECT seq FROM {table} WHERE hash = ? AND seq != ?", (prev, seq)).fetchone()
    if row is not None:
        return "reordered", f"record {seq} follows record {row[0]} in the chain"
    row = conn.execute(f"SELECT seq FROM {table} WHERE prev = ? AND seq != ?", (exp_prev, seq)).fetchone()
    if row is not None:
        return "reordered", f"record {row[0]} belongs at {seq} in the chain"
    return "chain broken", f"record {seq} is not chained to record {seq - 1}"


def verify(conn: sqlite3.Connection) -> VerifyResult:
    """Check both chains (journal first) inside one read snapshot."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        journal = _check(conn, JOURNAL)
        if not journal.ok:
            return VerifyResult(False, journal.checked, 0, "journal", journal.bad_seq, journal.reason,
                                journal.detail, journal.last_seq, journal.last_hash)
        head = _head(conn, JOURNAL)
        dissem = _check(conn, DISSEMINATION)
        if not dissem.ok:
            return VerifyResult(False, journal.checked, dissem.checked, "dissemination", dissem.bad_seq,
                                dissem.reason, dissem.detail, *head)
        return VerifyResult(True, journal.checked, dissem.checked, head_seq=head[0], head_hash=head[1])
    finally:
        if own:
            conn.execute("ROLLBACK")


# -- retention --------------------------------------------------------------------------

@attrs.frozen
class PruneResult:
    requested_days: int
    days: int                          # what was applied, never below the floor
    floor_applied: bool
    cutoff: str                        # records stamped before this were eligible
    journal_pruned: int = 0
    dissemination_pruned: int = 0
    anchor_seq: int = 0                # journal anchor after pruning
    refused: Optional[str] = None      # why nothing was pruned (a chain failed to verify)


def prune(conn: sqlite3.Connection, clock: Any, days: int) -> PruneResult:
    """Delete journal and dissemination records older than ``days`` (at least 365).

    Only a prefix of each chain in sequence order is removed (up to the first
    record inside the retention period), and only after that prefix verifies, so
    pruning never destroys the evidence of tampering.  The last pruned record's
    sequence number and hash become the chain's anchor.  Runs in a savepoint: it
    joins the caller's transaction if one is open, else commits on its own.
    """
    applied = max(int(days), RETENTION_FLOOR_DAYS)
    if applied != days:
        log.warning("journal retention below the floor, raised", requested_days=days, days=applied)
    cutoff = stamp(clock.now() - _dt.timedelta(days=applied))
    now = stamp(clock.now())
    counts: dict[str, int] = {}
    conn.execute("SAVEPOINT journal_prune")
    try:
        refused = _prune_chains(conn, cutoff, now, counts)
        if refused is not None:
            conn.execute("ROLLBACK TO journal_prune")
    except BaseException:
        # Never keep a deletion without its anchor.
        conn.execute("ROLLBACK TO journal_prune")
        raise
    finally:
        conn.execute("RELEASE journal_prune")
    if refused is not None:
        log.error("journal prune refused, chain does not verify", reason=refused)
        return PruneResult(days, applied, applied != days, cutoff, refused=refused)
    if any(counts.values()):
        log.info("journal pruned", cutoff=cutoff, days=applied, **counts)
    return PruneResult(days, applied, applied != days, cutoff, counts["journal"], counts["dissemination"],
                       _anchor(conn, JOURNAL)[0])


def _prune_chains(conn: sqlite3.Connection, cutoff: str, now: str, counts: dict[str, int]) -> Optional[str]:
    """Delete each chain's prefix stamped before ``cutoff``; the reason if one fails to verify."""
    for chain in CHAINS:
        counts[chain.table] = 0
        # +ts: walk in sequence order and stop at the first record to keep.
        keep = conn.execute(f"SELECT seq FROM {chain.table} WHERE +ts >= ? ORDER BY seq LIMIT 1",
                            (cutoff,)).fetchone()
        if keep is not None:
            last = keep[0] - 1
        else:
            last = conn.execute(f"SELECT MAX(seq) FROM {chain.table}").fetchone()[0]
        if last is None or last <= _anchor(conn, chain)[0]:
            continue
        check = _check(conn, chain, upto=last)
        if not check.ok:
            return f"{chain.table} record {check.bad_seq} {check.reason}: {check.detail}"
        counts[chain.table] = conn.execute(f"DELETE FROM {chain.table} WHERE seq <= ?", (last,)).rowcount
        conn.execute("INSERT INTO journal_anchor (chain, seq, hash, pruned_at, cutoff) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT(chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                     "pruned_at = excluded.pruned_at, cutoff = excluded.cutoff",
                     (chain.table, check.last_seq, check.last_hash, now, cutoff))
    return None


# -- search and export --------------------------------------------------------------------

When = Union[_dt.datetime, _dt.date, str, None]


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
           text: Optional[str] = None, kind: Optional[str] = None, limit: int = 100) -> list[Record]:
    """The newest ``limit`` matching records, oldest first.

    ORI, terminal, operator and key each have an index led by that column and
    followed by the time, so a filtered search reads only its own records; the
    text filter (a case-insensitive substring) only narrows what those select.
    """
    upper = {"ori": ori, "terminal": terminal, "operator": operator, "mke": mke}
    filters = {k: v.upper() if v else None for k, v in upper.items()}
    filters["kind"] = kind
    where, params = _where(since, until, filters, text)
    rows = conn.execute(f"SELECT {', '.join(Record.COLUMNS)} FROM journal{where} "
                        "ORDER BY ts DESC, seq DESC LIMIT ?", (*params, int(limit))).fetchall()
    return [Record.from_row(row) for row in reversed(rows)]


def search_disseminations(conn: sqlite3.Connection, since: When = None, until: When = None,
                          ori: Optional[str] = None, operator: Optional[str] = None,
                          subject: Optional[str] = None, limit: int = 100) -> list[Dissemination]:
    """The newest ``limit`` matching dissemination records, oldest first."""
    filters = {"ori": ori, "operator": operator, "subject": subject}
    where, params = _where(since, until, {k: v.upper() if v else None for k, v in filters.items()}, None)
    rows = conn.execute(f"SELECT {', '.join(Dissemination.COLUMNS)} FROM dissemination{where} "
                        "ORDER BY ts DESC, seq DESC LIMIT ?", (*params, int(limit))).fetchall()
    return [Dissemination.from_row(row) for row in reversed(rows)]


def frames(conn: sqlite3.Connection, since: When = None, until: When = None) -> Iterator[dict[str, Any]]:
    """``in`` and ``out`` records in switch order as replay capture objects (PROTOCOL.md 7).

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
               "cls": cls if kind == "out" else None, "text": text or ""}


def export(conn: sqlite3.Connection, out_file: IO[str], since: When = None, until: When = None) -> int:
    """Write ``frames`` as JSON Lines to ``out_file``; returns how many were written."""
    count = 0
    for frame in frames(conn, since, until):
        out_file.write(json.dumps(frame, ensure_ascii=True) + "\n")
        count += 1
    return count
