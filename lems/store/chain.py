"""The journal's hash chains and their appends (the hot path).

Every record is hash-chained to its predecessor:

    prev = hash of the preceding record (GENESIS for the first one)
    hash = sha256(canonical([prev, ts, kind, terminal, ..., event])).hexdigest()

``canonical`` is ``json.dumps(list, separators=(",", ":"), ensure_ascii=True)``
over the content columns in ``JOURNAL.columns`` order, so anyone can re-check a
journal with a few lines of any language.  The sequence number is not hashed:
order is bound by the chain itself.

The dissemination log for criminal history inquiries is a second table with a
chain of its own (same rules, its own genesis and anchor), so the journal chain
is untouched by it and each can be pruned and verified on its own.

Appends never commit: the switch commits once per reactor turn (group commit)
before any reply leaves.  A rolled-back turn is noticed at the next append
(SQLite hands out a lower sequence number than expected) and that record is
relinked to its real predecessor, so the chain survives rollbacks.  The same
relinking lets a second writer on the connection (retention's own record) append
between two of the switch's: the next append links to whatever is really there.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any, Iterable, Optional

import attrs

from lems.base.clock import stamp

GENESIS = "0" * 64
KINDS = frozenset({"in", "out", "security", "admin"})
CLASSES = frozenset({"R", "U", "S", "E"})


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


def chain_head(conn: sqlite3.Connection, chain: Chain) -> tuple[int, str]:
    """Sequence number and hash of the chain's newest record (its anchor when it has none)."""
    row = conn.execute(f"SELECT seq, hash FROM {chain.table} ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return row[0], row[1]
    return chain_anchor(conn, chain)


def chain_anchor(conn: sqlite3.Connection, chain: Chain) -> tuple[int, str]:
    """Where the chain resumes after pruning: the last pruned record (0 and GENESIS if none)."""
    row = conn.execute("SELECT seq, hash FROM journal_anchor WHERE chain = ?", (chain.table,)).fetchone()
    return (row[0], row[1]) if row is not None else (0, GENESIS)


class _Writer:
    """Appends to one chain, keeping its head in memory (no SELECT per append)."""

    def __init__(self, conn: sqlite3.Connection, chain: Chain) -> None:
        self.conn = conn
        self.chain = chain
        self.sql = chain.insert_sql
        self.seq, self.hash = chain_head(conn, chain)

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
        return row[0] if row is not None else chain_anchor(self.conn, self.chain)[1]


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
