"""The switch clock a home runs on, kept in the store (PROTOCOL.md 8, the emulated clock).

A home whose ``[clock]`` says ``adjustable = true`` runs on an
``EmulatedClock``: the system clock plus the offset the console's ``clock
advance`` built up.  The offset and the switch time the last advance reached
are one row of ``switch_clock``, written in the same transaction as the
advance's journal record, so a restarted switch resumes at the advanced time,
never earlier.  A home that is no longer adjustable but has an offset keeps it
(switch time never moves backwards) and cannot advance it further.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from typing import Any, Optional

import attrs

from lems.base.clock import UTC, EmulatedClock, SystemClock


@attrs.frozen
class Saved:
    offset: float              # seconds switch time is ahead of the system clock
    reached: _dt.datetime      # the switch time the last advance reached
    advances: int


def load(conn: sqlite3.Connection) -> Optional[Saved]:
    """The kept offset, or None when this home's clock was never advanced."""
    row = conn.execute("SELECT offset_seconds, reached, advances FROM switch_clock WHERE id = 1").fetchone()
    if row is None:
        return None
    return Saved(float(row[0]), _dt.datetime.fromisoformat(row[1]).astimezone(UTC), int(row[2]))


def save(conn: sqlite3.Connection, offset: float, reached: _dt.datetime) -> None:
    """Keep the offset an advance made (inside the caller's transaction)."""
    conn.execute("INSERT INTO switch_clock (id, offset_seconds, reached, advances) VALUES (1, ?, ?, 1) "
                 "ON CONFLICT(id) DO UPDATE SET offset_seconds = excluded.offset_seconds, "
                 "reached = excluded.reached, advances = advances + 1",
                 (offset, reached.astimezone(UTC).isoformat()))


def switch_clock(conn: sqlite3.Connection, adjustable: bool, base: Any = None) -> Any:
    """The clock a switch on this store runs on: ``base`` (the system clock) unless the home is
    adjustable or its clock was advanced before, then an ``EmulatedClock`` resuming the kept offset."""
    base = base if base is not None else SystemClock()
    saved = load(conn)
    if not adjustable and saved is None:
        return base
    if saved is None:
        return EmulatedClock(base, adjustable=adjustable)
    return EmulatedClock(base, offset=saved.offset, floor=saved.reached, adjustable=adjustable)
