"""The switch's durable state: one SQLite database in the home's var/ (WAL).

Schema changes are numbered migrations (``lems.store.schema``) applied in
order at open and recorded in ``schema_migrations``.

Durability rule (DESIGN.md): every state change and journal record is committed
before the reply that depends on it leaves the switch.  The link does that once
per reactor turn (``commit``), so a burst of frames costs one fsync.

The store is owner-only whatever the umask: its directory is set to 0700 and
the database file is created 0600 before SQLite opens it (SQLite gives the
-wal and -shm files it makes later the main file's permissions).  A file store
with a journal keeps the signed head file beside it (``lems.store.head``),
written before each COMMIT; ``open`` refuses a store whose journal is in
neither of the states its head file names.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable, Sequence

from lems.base.private import private_dir, private_file
from lems.store import head as head_mod
from lems.store.schema import MIGRATIONS, RENAMED, Migration


class HeadMismatchError(RuntimeError):
    """The journal is not in a state its signed head file names (cut, rewritten or a forged anchor)."""


class Store:
    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self._pending = False
        self._osn: dict[str, int] = {}  # last OSN given per terminal
        self._osn_dirty: set[str] = set()  # terminals whose counter this transaction has not written yet
        self._head: head_mod.HeadFile | None = None  # the signed head file (file stores with a journal)
        self._committed: head_mod.State | None = None  # the chains' state as last committed
        self._unconfirmed = False  # the head file still names the state before the last COMMIT too

    @classmethod
    def open(cls, path: Path | str, migrations: Sequence[Migration] | None = None) -> "Store":
        path = Path(path) if path != ":memory:" else None
        if path is not None:
            private_dir(path.parent)
            private_file(path)  # before SQLite creates it: the -wal and -shm inherit its 0600
            for suffix in ("-wal", "-shm"):  # made by an earlier, more open version
                if path.with_name(path.name + suffix).exists():
                    private_file(path.with_name(path.name + suffix))
        # isolation_level=None: transactions are explicit, so one BEGIN covers a reactor turn.
        conn = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not only a process crash.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn, path)
        store.migrate(MIGRATIONS if migrations is None else migrations)
        if path is not None and head_mod.has_journal(conn):
            store._open_head(path)
        return store

    def _open_head(self, path: Path) -> None:
        """Check the journal against its head file (made, with the key, when the home has none)."""
        key = head_mod.ensure_key(path)
        try:
            previous = head_mod.read(path)  # before the database, then again after it (as verify does)
            now = head_mod.state(self.conn)
            again = head_mod.read(path) if previous is not None else None
        except head_mod.HeadError as exc:
            self.conn.close()
            raise HeadMismatchError(f"{exc}; run `lems audit verify`") from None
        if previous is not None:
            problem = head_mod.compare(now, previous, again)
            if problem is not None:
                self.conn.close()
                raise HeadMismatchError(
                    f"the journal does not match its signed head file {head_mod.head_path(path)}: "
                    f"{problem.table} record {problem.bad_seq} {problem.reason} ({problem.detail}); "
                    f"run `lems audit verify`, and move the head file away to accept the store as it is")
        self._head = head_mod.HeadFile(path, key)
        self._head.write(now, now)
        self._committed = now

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
        if not self._pending and self._unconfirmed:
            # The last COMMIT went through: say so (at a call with nothing to commit: the switch's
            # next one-second tick at the latest, or close), so that its records cannot be cut
            # as if the switch had died before that COMMIT.  A turn that commits again says it
            # in its own head write.
            self._head.write(self._committed, self._committed)
            self._unconfirmed = False
        if self._pending:
            if self._osn_dirty:
                self.conn.executemany("INSERT INTO terminal_state (terminal, osn) VALUES (?, ?) "
                                      "ON CONFLICT(terminal) DO UPDATE SET osn = excluded.osn",
                                      [(t, self._osn[t]) for t in self._osn_dirty])
                self._osn_dirty.clear()
            if self._head is None:
                self._pending = False
                self.conn.execute("COMMIT")
                return
            # The head file first, naming both states: a crash on either side of the COMMIT
            # leaves the database in one of them.  A head that cannot be written (disk full)
            # leaves the turn uncommitted and pending, as a failed COMMIT would.
            new = head_mod.state(self.conn)
            if new != self._committed:
                self._head.write(self._committed, new)
            self._pending = False
            self.conn.execute("COMMIT")
            self._unconfirmed = new != self._committed
            self._committed = new

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
        if self._head is not None:
            self._head.close()
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
