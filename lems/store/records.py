"""The record sets in the store: every record the file handlers serve, and its search keys.

The store layer's side of ``lems.files.index``: it knows tables, rows and keys,
never what a record means (that is ``lems.files``, which computes the keys).
Every SQL statement about records is here, so a second backend (PostgreSQL,
issue 20) replaces this module and nothing above it.

Tables (migration ``0011_records``, ``lems.store.schema``):

``record_home``
    One row per (file, record set) with the number of records in it (kept by
    every write here, so ``counts`` and ``sets_for`` never count rows).
``record``
    One row per record as it is now: ``id`` is the entry order, ``nic`` is
    unique across all files, ``fields`` the record's fields (``encode_fields``
    in ``lems.files.index``), ``source``/``line`` where an imported record came
    from (NULL for a record entered at run time).
``record_key``
    ``(key, home, record)``, the search index: a record has one key per number
    field value (``SOC=123456789``) and one per phonetic surname key and date
    of birth (``~D500|19800101``).  A search is ``key IN (...)``: an index look-up.
``record_source``
    One row per imported record file: its name, size, mtime and SHA-256, so an
    unchanged file is never read again.
``record_meta``
    ``keys``: a fingerprint of the catalogue's search rules the keys were made
    with; when the rules change the keys are made again.

Writes go through ``Store.write()`` (the turn's transaction); reads use the
connection directly, so a record another process committed (``lems records
import``, a loader of another feature) is found by the next search: there is
no copy in memory to go stale.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

# The columns of a record row, in order (``Row``).
COLUMNS = ("id", "nic", "home", "status", "ori", "entered", "caution", "fields", "source", "line")
_SELECT = "SELECT r.id, r.nic, r.home, r.status, r.ori, r.entered, r.caution, r.fields, r.source, r.line"
_INSERT = ("INSERT INTO record (id, nic, home, status, ori, entered, caution, fields, source, line) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_KEY = "INSERT OR IGNORE INTO record_key (key, home, record) VALUES (?, ?, ?)"
# SQLite's default limit of host parameters is 999 on older builds: keep IN lists below it.
_CHUNK = 900

Row = tuple  # (id, nic, home, status, ori, entered, caution, fields, source, line)


class DuplicateNic(Exception):
    """A NIC already on file (``where`` names its source file and line, or run time)."""

    def __init__(self, nic: str, where: str) -> None:
        super().__init__(f"nic {nic} already used at {where}")
        self.nic = nic
        self.where = where


class RecordStore:
    """The record tables of one store (``lems.store.sqlite.Store``)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.conn: sqlite3.Connection = store.conn
        self._homes: dict[tuple[str, str], int] = {}  # ids never change once given: safe to keep
        self._home_names: dict[int, tuple[str, str]] = {}

    # -- homes (file, record set) --------------------------------------------------------

    def home(self, file: str, record_set: str, create: bool = False) -> Optional[int]:
        key = (file, record_set)
        found = self._homes.get(key)
        if found is None:
            row = self.conn.execute("SELECT id FROM record_home WHERE file = ? AND record_set = ?", key).fetchone()
            if row is None:
                if not create:
                    return None
                row = (self.store.write().execute(
                    "INSERT INTO record_home (file, record_set, records) VALUES (?, ?, 0)", key).lastrowid,)
            found = self._homes[key] = row[0]
            self._home_names[found] = key
        return found

    def home_name(self, home: int) -> tuple[str, str]:
        found = self._home_names.get(home)
        if found is None:
            row = self.conn.execute("SELECT file, record_set FROM record_home WHERE id = ?", (home,)).fetchone()
            found = self._home_names[home] = (row[0], row[1])
            self._homes[found] = home
        return found

    def counts(self) -> dict[tuple[str, str], int]:
        """Records per (file, record set), for the sets that hold any."""
        return {(f, s): n for f, s, n in self.conn.execute(
            "SELECT file, record_set, records FROM record_home WHERE records > 0 ORDER BY file, record_set")}

    def count(self, home: Optional[int]) -> int:
        if home is None:
            return 0
        row = self.conn.execute("SELECT records FROM record_home WHERE id = ?", (home,)).fetchone()
        return row[0] if row else 0

    def total(self) -> int:
        return self.conn.execute("SELECT COALESCE(SUM(records), 0) FROM record_home").fetchone()[0]

    def _add_counts(self, conn: sqlite3.Connection, deltas: dict[int, int]) -> None:
        conn.executemany("UPDATE record_home SET records = records + ? WHERE id = ?",
                         [(n, home) for home, n in deltas.items() if n])

    # -- reads ----------------------------------------------------------------------------

    def by_nic(self, nic: str) -> Optional[Row]:
        return self.conn.execute(f"{_SELECT} FROM record r WHERE r.nic = ?", (nic,)).fetchone()

    def candidates(self, keys: Sequence[str], homes: Optional[Sequence[int]] = None) -> list[tuple[str, Row]]:
        """``(key, row)`` for every record that has one of ``keys`` (in the homes given)."""
        if not keys:
            return []
        out: list[tuple[str, Row]] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start:start + _CHUNK])
            sql = (f"SELECT k.key, r.id, r.nic, r.home, r.status, r.ori, r.entered, r.caution, r.fields, "
                   f"r.source, r.line FROM record_key k JOIN record r ON r.id = k.record "
                   f"WHERE k.key IN ({','.join('?' * len(chunk))})")
            params: list[Any] = chunk
            if homes is not None:
                if len(homes) == 1:
                    sql += " AND k.home = ?"
                else:
                    sql += f" AND k.home IN ({','.join('?' * len(homes))})"
                params = chunk + list(homes)
            out += [(row[0], row[1:]) for row in self.conn.execute(sql, params)]
        return out

    def rows(self, home: Optional[int] = None) -> Iterator[Row]:
        """Every record (of one home), in entry order: for scans in tests and rebuilds, never searches."""
        if home is None:
            cursor = self.conn.execute(f"{_SELECT} FROM record r ORDER BY r.id")
        else:
            cursor = self.conn.execute(f"{_SELECT} FROM record r WHERE r.home = ? ORDER BY r.id", (home,))
        while True:
            batch = cursor.fetchmany(2000)
            if not batch:
                return
            yield from batch

    def by_ori(self, home: int, ori: str) -> list[Row]:
        """The records of one home entered by one ORI (duplicate check without an indexed field)."""
        return self.conn.execute(f"{_SELECT} FROM record r WHERE r.home = ? AND r.ori = ? ORDER BY r.id",
                                 (home, ori)).fetchall()

    def where(self, nic: str) -> str:
        """Where a NIC on file came from: ``file.jsonl:LINE`` or ``a run-time entry``."""
        row = self.conn.execute("SELECT s.name, r.line FROM record r LEFT JOIN record_source s ON s.id = r.source "
                                "WHERE r.nic = ?", (nic,)).fetchone()
        if row is None:
            return "nowhere"
        if row[0] is None:
            return "a run-time entry"
        return f"{row[0].rsplit('/', 1)[-1]}:{row[1]}"

    # -- writes (inside the turn's transaction) -----------------------------------------

    def next_id(self) -> int:
        return (self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM record").fetchone()[0]) + 1

    def insert(self, home: int, nic: str, status: str, ori: str, entered: str, caution: Optional[str],
               fields: str, keys: Iterable[str], source: Optional[int] = None, line: Optional[int] = None) -> int:
        conn = self.store.write()
        try:
            rid = conn.execute("INSERT INTO record (nic, home, status, ori, entered, caution, fields, source, line) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (nic, home, status, ori, entered, caution, fields, source, line)).lastrowid
        except sqlite3.IntegrityError:
            raise DuplicateNic(nic, self.where(nic)) from None
        conn.executemany(_INSERT_KEY, [(key, home, rid) for key in keys])
        self._add_counts(conn, {home: 1})
        return rid

    def update(self, rid: int, home: int, status: str, ori: str, entered: str, caution: Optional[str],
               fields: str, old_keys: Iterable[str], new_keys: Iterable[str]) -> None:
        """A new version of a record in its place (same id: the entry order stays)."""
        conn = self.store.write()
        old, new = set(old_keys), set(new_keys)
        conn.executemany("DELETE FROM record_key WHERE key = ? AND home = ? AND record = ?",
                         [(key, home, rid) for key in old - new])
        conn.execute("UPDATE record SET status = ?, ori = ?, entered = ?, caution = ?, fields = ? WHERE id = ?",
                     (status, ori, entered, caution, fields, rid))
        conn.executemany(_INSERT_KEY, [(key, home, rid) for key in new - old])

    def delete(self, rid: int, home: int, keys: Iterable[str]) -> None:
        conn = self.store.write()
        conn.executemany("DELETE FROM record_key WHERE key = ? AND home = ? AND record = ?",
                         [(key, home, rid) for key in keys])
        conn.execute("DELETE FROM record WHERE id = ?", (rid,))
        self._add_counts(conn, {home: -1})

    # -- imports ----------------------------------------------------------------------------

    def sources(self, prefix: str) -> dict[str, tuple[int, int, int, str]]:
        """Imported files under ``prefix``: name -> (id, size, mtime_ns, sha256)."""
        return {name: (sid, size, mtime, digest) for sid, name, size, mtime, digest in self.conn.execute(
            "SELECT id, name, size, mtime_ns, sha256 FROM record_source WHERE name LIKE ? ESCAPE '\\'",
            (_like_prefix(prefix),))}

    def source_list(self) -> list[tuple[str, int, str]]:
        """(name, records, imported) of every imported file."""
        return self.conn.execute("SELECT name, records, imported FROM record_source ORDER BY name").fetchall()

    def touch_source(self, sid: int, size: int, mtime_ns: int) -> None:
        """A file whose time changed but not its content: remember the new time, import nothing."""
        self.store.write().execute("UPDATE record_source SET size = ?, mtime_ns = ? WHERE id = ?",
                                   (size, mtime_ns, sid))

    def entered_nics(self) -> set[str]:
        """NICs of the records changed or entered at run time (``entered_record``): an import keeps them."""
        return {row[0] for row in self.conn.execute("SELECT nic FROM entered_record")}

    def unadopted_entries(self) -> list[tuple[str, str]]:
        """(nic, JSON) of entered records not yet in ``record`` (a store from before the record tables)."""
        return self.conn.execute("SELECT e.nic, e.record FROM entered_record e WHERE NOT EXISTS "
                                 "(SELECT 1 FROM record r WHERE r.nic = e.nic) ORDER BY e.id").fetchall()

    def drop_source(self, sid: int, keep: set[str]) -> None:
        """Take a file's records off (all but the ones changed at run time, ``keep``)."""
        conn = self.store.write()
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS dropping (id INTEGER PRIMARY KEY, home INTEGER)")
        conn.execute("DELETE FROM temp.dropping")
        conn.execute("INSERT INTO temp.dropping SELECT id, home FROM record WHERE source = ?", (sid,))
        if keep:
            kept = list(keep)
            for start in range(0, len(kept), _CHUNK):
                chunk = kept[start:start + _CHUNK]
                conn.execute(f"DELETE FROM temp.dropping WHERE id IN (SELECT id FROM record WHERE nic IN "
                             f"({','.join('?' * len(chunk))}))", chunk)
        deltas = {home: -n for home, n in conn.execute("SELECT home, COUNT(*) FROM temp.dropping GROUP BY home")}
        conn.execute("DELETE FROM record_key WHERE record IN (SELECT id FROM temp.dropping)")
        conn.execute("DELETE FROM record WHERE id IN (SELECT id FROM temp.dropping)")
        conn.execute("DELETE FROM temp.dropping")
        self._add_counts(conn, deltas)

    def forget_source(self, sid: int) -> None:
        self.store.write().execute("DELETE FROM record_source WHERE id = ?", (sid,))

    def save_source(self, name: str, size: int, mtime_ns: int, sha256: str, records: int, at: str) -> int:
        conn = self.store.write()
        conn.execute("INSERT INTO record_source (name, size, mtime_ns, sha256, records, imported) "
                     "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET size = excluded.size, "
                     "mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, records = excluded.records, "
                     "imported = excluded.imported", (name, size, mtime_ns, sha256, records, at))
        return conn.execute("SELECT id FROM record_source WHERE name = ?", (name,)).fetchone()[0]

    def begin_bulk(self) -> None:
        """Start a bulk import: its keys are gathered in a temporary table and go into the key
        index sorted, at ``end_bulk`` (in key order a B-tree insert is an append)."""
        conn = self.store.write()
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS import_key (key TEXT, home INTEGER, record INTEGER)")
        conn.execute("DELETE FROM temp.import_key")
        self._bulk = True

    def end_bulk(self) -> None:
        conn = self.store.write()
        conn.execute("INSERT OR IGNORE INTO record_key (key, home, record) "
                     "SELECT key, home, record FROM temp.import_key ORDER BY key, home, record")
        conn.execute("DELETE FROM temp.import_key")
        self._bulk = False

    _bulk = False

    def bulk(self, rows: Sequence[Row], keys: Sequence[tuple[str, int, int]]) -> Optional[str]:
        """Insert rows with ids given (``next_id`` onwards) and their keys; returns None, or the
        first NIC already on file (nothing of the batch is then written)."""
        conn = self.store.write()
        conn.execute("SAVEPOINT record_batch")
        try:
            conn.executemany(_INSERT, rows)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO record_batch")
            conn.execute("RELEASE record_batch")
            for row in rows:
                if self.conn.execute("SELECT 1 FROM record WHERE nic = ?", (row[1],)).fetchone():
                    return row[1]
            raise
        conn.executemany("INSERT INTO temp.import_key (key, home, record) VALUES (?, ?, ?)" if self._bulk
                         else _INSERT_KEY, keys)
        conn.execute("RELEASE record_batch")
        deltas: dict[int, int] = {}
        for row in rows:
            deltas[row[2]] = deltas.get(row[2], 0) + 1
        self._add_counts(conn, deltas)
        return None

    def meta(self, name: str) -> Optional[str]:
        row = self.conn.execute("SELECT value FROM record_meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        self.store.write().execute("INSERT INTO record_meta (name, value) VALUES (?, ?) "
                                   "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))

    def replace_keys(self, keys: Iterable[tuple[str, int, int]]) -> None:
        """Every search key made again (the catalogue's search rules changed)."""
        conn = self.store.write()
        conn.execute("DELETE FROM record_key")
        batch: list[tuple[str, int, int]] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= 20000:
                conn.executemany(_INSERT_KEY, batch)
                batch = []
        conn.executemany(_INSERT_KEY, batch)

    def savepoint(self, name: str) -> None:
        self.store.write().execute(f"SAVEPOINT {name}")

    def release(self, name: str) -> None:
        self.conn.execute(f"RELEASE {name}")

    def rollback_to(self, name: str) -> None:
        self.conn.execute(f"ROLLBACK TO {name}")
        self.conn.execute(f"RELEASE {name}")
        # Homes made inside the savepoint are gone again: forget their ids.
        self._homes.clear()
        self._home_names.clear()

    def tune_for_import(self, megabytes: int = 256) -> None:
        """A larger page cache for a bulk import (this connection only)."""
        self.conn.execute(f"PRAGMA cache_size = -{megabytes * 1024}")


def open_store(path: Path | str) -> Any:
    """The store for a tool that writes records only (``lems records import``), beside a running
    switch: migrated, but without the journal's head file, which only the switch writes (the
    records tables are not chained).  Waits up to a minute for the switch's turn to commit."""
    from lems.base.private import private_dir, private_file
    from lems.store.schema import MIGRATIONS
    from lems.store.sqlite import Store

    path = Path(path)
    private_dir(path.parent)
    private_file(path)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=60.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    store = Store(conn, path)
    store.migrate(MIGRATIONS)
    return store


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
