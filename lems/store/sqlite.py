"""The switch's durable state: one SQLite database in the home's var/ (WAL).

Schema changes are numbered migrations (``lems.store.schema``) applied in
order at open and recorded in ``schema_migrations``.

Durability rule (DESIGN.md): every state change and journal record is committed
before the reply that depends on it leaves the switch.  The link does that once
per reactor turn (``commit``), so a burst of frames costs one fsync.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable, Sequence

from lems.store.schema import MIGRATIONS, RENAMED, Migration


class Store:
    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self._pending = False
        self._osn: dict[str, int] = {}  # last OSN given per terminal
        self._osn_dirty: set[str] = set()  # terminals whose counter this transaction has not written yet

    @classmethod
    def open(cls, path: Path | str, migrations: Sequence[Migration] | None = None) -> "Store":
        path = Path(path) if path != ":memory:" else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit, so one BEGIN covers a reactor turn.
        conn = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not only a process crash.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn, path)
        store.migrate(MIGRATIONS if migrations is None else migrations)
        return store

    def migrate(self, migrations: Sequence[Migration]) -> list[str]:
        self.conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied TEXT)")
        for old, new in RENAMED.items():  # names an earlier version recorded; kept, so it can still open the store
            self.conn.execute("INSERT OR IGNORE INTO schema_migrations SELECT ?, applied FROM schema_migrations "
                              "WHERE name = ?", (new, old))
        done = {row[0] for row in self.conn.execute("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in migrations:
            if name in done:
                continue
            self.conn.execute("BEGIN")
            try:
                for statement in _statements(sql):
                    self.conn.execute(statement)
                self.conn.execute("INSERT INTO schema_migrations VALUES (?, datetime('now'))", (name,))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            applied.append(name)
        return applied

    # -- group commit ------------------------------------------------------

    def write(self) -> sqlite3.Connection:
        """The connection, inside the current turn's transaction (opened on first use)."""
        if not self._pending:
            self.conn.execute("BEGIN")
            self._pending = True
        return self.conn

    def commit(self) -> None:
        if self._pending:
            if self._osn_dirty:
                self.conn.executemany("INSERT INTO terminal_state (terminal, osn) VALUES (?, ?) "
                                      "ON CONFLICT(terminal) DO UPDATE SET osn = excluded.osn",
                                      [(t, self._osn[t]) for t in self._osn_dirty])
                self._osn_dirty.clear()
            self._pending = False
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._pending:
            self._pending = False
            self.conn.execute("ROLLBACK")
            self._osn.clear()  # the counters given out in the transaction are gone too
            self._osn_dirty.clear()

    def transaction(self, work: Callable[[sqlite3.Connection], object]) -> object:
        """Run ``work`` and commit at once (administrative changes outside the hot path)."""
        result = work(self.write())
        self.commit()
        return result

    def close(self) -> None:
        self.commit()
        self.conn.close()

    # -- registry change notices (PROTOCOL.md 8) ------------------------------

    def announce_registry_change(self, what: str, at: str) -> int:
        """Tell a running switch on this store that terminals/ changed (committed at once)."""
        return self.transaction(lambda conn: conn.execute(
            "INSERT INTO registry_change (at, what) VALUES (?, ?)", (at, what)).lastrowid)

    def registry_change_seq(self) -> int:
        """The newest registry change announced (0 when none ever was)."""
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM registry_change").fetchone()[0]

    # -- per-terminal output sequence (PROTOCOL.md 3: 00001-99999, wrapping) ----

    def peek_osn(self, terminal: str) -> int:
        """The OSN ``next_osn`` will give ``terminal`` next (a reply can print its own number)."""
        last = self._osn.get(terminal)
        if last is None:  # read once per terminal; afterwards the store only follows the counter
            row = self.conn.execute("SELECT osn FROM terminal_state WHERE terminal = ?", (terminal,)).fetchone()
            last = self._osn[terminal] = row[0] if row else 0
        return last % 99999 + 1

    def next_osn(self, terminal: str) -> int:
        """Number one output frame.  The counter is written once per turn, with the commit
        that must happen before the frame leaves (``commit``), not once per frame."""
        self.write()
        osn = self._osn[terminal] = self.peek_osn(terminal)
        self._osn_dirty.add(terminal)
        return osn


def _statements(script: str) -> list[str]:
    """Split a migration script on semicolons that end complete statements."""
    out, current = [], []
    for line in script.splitlines(keepends=True):
        current.append(line)
        candidate = "".join(current)
        if sqlite3.complete_statement(candidate):
            if candidate.strip():
                out.append(candidate)
            current = []
    tail = "".join(current).strip()
    if tail and not tail.startswith("--"):
        out.append(tail)
    return out
