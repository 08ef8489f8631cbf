"""Records another process entered in the store (``lems ppf load``): announced, so a running switch takes them.

The writer commits its ``entered_record`` rows and one ``record_change`` row in
the same transaction; the running switch's record handler compares the newest
announcement with the last it took (``RecordFileHandler.refresh``, every tick
and before every PPF message) and lays the new rows over its indexes.  Once the
records live in the store rather than in memory, refresh has nothing to do and
this stays as the journal's account of who loaded what.
"""

from __future__ import annotations

import sqlite3


def announce(conn: sqlite3.Connection, what: str, at: str) -> int:
    """One announcement inside the caller's transaction; its id."""
    return int(conn.execute("INSERT INTO record_change (at, what) VALUES (?, ?)", (at, what)).lastrowid)


def latest(conn: sqlite3.Connection) -> int:
    """The newest announcement (0 when none ever was)."""
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM record_change").fetchone()[0])
