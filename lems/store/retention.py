"""Journal retention as a schedule: ``[audit] retention_days``, kept once a day.

The switch calls ``Retention.tick`` from its one-second tick; at most once per
switch-clock day (the UTC date of the injected clock, never the system's) it
prunes the journal and the dissemination log to ``retention_days`` (never below
``RETENTION_FLOOR_DAYS``) with ``integrity.prune``, which leaves the anchor and
the RETENTION admin record that ``verify`` checks.  The day of the last run is
kept in the store (``retention_run``), in the same transaction as the pruning,
so a restart on the same day does not run it again.  Moving the emulated clock
forward a day makes it run on the next tick; a clock set back waits until the
last run's day has passed.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Optional

from lems.base.clock import UTC, stamp
from lems.store.chain import Journal
from lems.store.integrity import PruneResult, prune


class Retention:
    """``Retention(store, days, clock, journal=None).tick(now) -> rows pruned``.

    ``store`` is a ``lems.store.Store``; ``journal`` the switch's own ``Journal``
    when it has one (the RETENTION record is appended through it; without it a
    journal of its own is made on the store's connection, and the switch's next
    append links to that record all the same).
    """

    def __init__(self, store: Any, days: int, clock: Any, journal: Optional[Journal] = None) -> None:
        self.store = store
        self.days = int(days)
        self.clock = clock
        self.journal = journal
        self._last: Optional[str] = None    # the last run's day, once read from the store
        self.last_result: Optional[PruneResult] = None

    def due(self, now: _dt.datetime) -> bool:
        """Has retention not run yet on ``now``'s switch-clock day?"""
        if self._last is None:
            row = self.store.conn.execute("SELECT day FROM retention_run WHERE id = 1").fetchone()
            self._last = row[0] if row is not None else ""
        return _day(now) > self._last

    def tick(self, now: _dt.datetime) -> int:
        """Prune once a day; the number of records pruned (journal and dissemination), 0 when not due."""
        if not self.due(now):
            return 0
        day = _day(now)

        def work(conn: Any) -> PruneResult:
            result = prune(conn, self.clock, self.days, journal=self.journal, now=now)
            conn.execute("INSERT INTO retention_run (id, day, ran, days, pruned, refused) VALUES (1, ?, ?, ?, ?, ?) "
                         "ON CONFLICT(id) DO UPDATE SET day = excluded.day, ran = excluded.ran, "
                         "days = excluded.days, pruned = excluded.pruned, refused = excluded.refused",
                         (day, stamp(now), result.days, result.pruned, result.refused))
            return result

        try:
            result = self.store.transaction(work)
        finally:
            # Tried today, whatever happened: a prune that fails is not retried every second.
            self._last = day
        self.last_result = result
        return result.pruned


def _day(now: _dt.datetime) -> str:
    return now.astimezone(UTC).date().isoformat()
