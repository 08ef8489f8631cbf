"""The emulated NICS index (mental health prohibitions): a remote system behind destination WVNICS000.

The state switch reports its prohibited persons file (lems.traffic.ppf) to the
FBI's NICS; here NICS is emulated, a ``[[remote]]`` of the route table
(lems.traffic.remotes) with an index of its own in the store (table
``nics_record``), so agencies and vendors can see what NICS holds and exercise
the failure paths.

What the switch sends it (``submit``), one message each, answered by one line:

* ``EDP.<ORI>.NIC/<nic>.NAM/...`` a new record: ``EDP ACCEPTED NRN/NR0000000001``
  (the NICS record number, ``NR`` and 10 digits, never given twice);
* ``MDP.<ORI>.NRN/<nrn>.NIC/<nic>.<the record's fields>``: the fields replace what NICS held,
  ``RLD/<date>`` marks relief: ``MDP ACCEPTED NRN/...``;
* ``XDP.<ORI>.NRN/<nrn>.NIC/<nic>``: the record is cancelled: ``XDP ACCEPTED NRN/...``;
* an NRN NICS does not hold (``nics forget``): ``RemoteRefused`` ``REJECT NOT ON FILE NRN/...``.

What a terminal asks it (``answer``), the control terminal agency only (policy):
``QDP.<ORI>.NAM/<name>.DOB/<dob>`` or ``QDP.<ORI>.NRN/<nrn>``; a record is::

    MKE/NICS INDEX - MENTAL HEALTH
    RELIEF GRANTED 20260301            only when relief was reported
    NRN/NR0000000001
    NAM/ROE, RICHARD
    DOB/19750505
    ...                                the fields NICS holds
    ORI/OR999050H NIC/P000000001 NTE/20260102

or ``NO NICS RECORD NAM/ROE, RICHARD DOB/19750505`` (``NO NICS RECORD NRN/...``).

Fault injection (the console): ``set_available(False)`` (``nics down``): every
submit and answer raises ``RemoteUnavailable`` until ``set_available(True)``;
``forget(nrn)`` (``nics forget``): NICS loses one record.  The state is in the
store (table ``nics_state``), so a restart keeps NICS down.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Optional, Sequence

import attrs

from lems.files.handlers import HandlerContext
from lems.traffic.remotes import RemoteRefused, RemoteUnavailable
from lems.wire.message import Message

NAME = "NICS"
HEADING = "MKE/NICS INDEX - MENTAL HEALTH"
NRN_PATTERN = re.compile(r"NR[0-9]{10}")
# What NICS keeps of a record, in this order (the PPF's minimum information and relief).
HELD = ("NAM", "DOB", "SEX", "RAC", "SOC", "OLN", "OLS", "COR", "PPT", "ISD", "OCA", "RLD")
_SPACES = re.compile(r"\s+")


def _name_key(name: str) -> str:
    return _SPACES.sub(" ", name.strip().upper()).replace(", ", ",")


@attrs.frozen
class NicsEntry:
    """One record of the NICS index, as its report gives it."""

    nrn: str
    ori: str
    nic: str
    fields: tuple[tuple[str, str], ...]
    relief: Optional[str]
    entered: str

    def get(self, code: str) -> Optional[str]:
        return next((v for c, v in self.fields if c == code), None)


class EmulatedNics:
    """The ``nics`` remote (lems.traffic.remotes)."""

    def __init__(self, context: HandlerContext) -> None:
        self.context = context
        self.store = context.store
        self.clock = context.clock
        self.name = str(context.options.get("name", NAME))
        self.ori = str(context.options.get("ori", "WVNICS000"))

    # -- availability (console: nics down / nics up) ------------------------------------------

    def available(self) -> bool:
        row = self.store.conn.execute("SELECT up FROM nics_state WHERE id = 1").fetchone()
        return row is None or bool(row[0])

    def set_available(self, up: bool) -> bool:
        """Set NICS up or down; True when that changed anything."""
        was = self.available()
        self.store.write().execute(
            "INSERT INTO nics_state (id, up, changed) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET up = excluded.up, changed = excluded.changed",
            (int(up), self._now()))
        return was != up

    def forget(self, nrn: str) -> bool:
        """NICS loses one record (console: nics forget); False when it holds no such NRN."""
        cur = self.store.write().execute("DELETE FROM nics_record WHERE nrn = ?", (nrn.strip().upper(),))
        return cur.rowcount > 0

    # -- what the switch sends ------------------------------------------------------------------

    def submit(self, msg: Message) -> str:
        if not self.available():
            raise RemoteUnavailable(f"{self.ori} {self.name} UNAVAILABLE")
        fields = tuple((c, v) for c, v in msg.fields if c in HELD and v)
        nic = msg.get("NIC") or ""
        if msg.mke == "EDP":
            if not nic:
                raise RemoteRefused("REJECT - NIC REQUIRED")
            nrn = self._next_nrn()
            now = self._now()
            self.store.write().execute(
                "INSERT INTO nics_record (nrn, state_ori, nic, name_key, dob, fields, relief, status, entered, "
                "changed) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                (nrn, msg.ori, nic, _name_key(msg.get("NAM") or ""), msg.get("DOB") or "", json.dumps(fields),
                 msg.get("RLD"), now, now))
            return f"EDP ACCEPTED NRN/{nrn}"
        nrn = (msg.get("NRN") or "").upper()
        row = self.store.conn.execute("SELECT status FROM nics_record WHERE nrn = ?", (nrn,)).fetchone()
        if row is None or row[0] != "active":
            raise RemoteRefused(f"REJECT NOT ON FILE NRN/{nrn}")
        if msg.mke == "MDP":
            self.store.write().execute(
                "UPDATE nics_record SET fields = ?, name_key = ?, dob = ?, relief = ?, changed = ? WHERE nrn = ?",
                (json.dumps(fields), _name_key(msg.get("NAM") or ""), msg.get("DOB") or "", msg.get("RLD"),
                 self._now(), nrn))
            return f"MDP ACCEPTED NRN/{nrn}"
        if msg.mke == "XDP":
            self.store.write().execute("UPDATE nics_record SET status = 'cancelled', changed = ? WHERE nrn = ?",
                                       (self._now(), nrn))
            return f"XDP ACCEPTED NRN/{nrn}"
        raise RemoteRefused(f"{msg.mke} NOT ACCEPTED BY {self.ori}")

    def report(self) -> list[NicsEntry]:
        """NICS's report of the records it holds (the quarterly reconciliation); RemoteUnavailable when down."""
        if not self.available():
            raise RemoteUnavailable(f"{self.ori} {self.name} UNAVAILABLE")
        rows = self.store.conn.execute("SELECT nrn, state_ori, nic, fields, relief, entered FROM nics_record "
                                       "WHERE status = 'active' ORDER BY nrn")
        return [self._entry(row) for row in rows]

    # -- what a terminal asks -------------------------------------------------------------------

    def answer(self, msg: Message) -> Sequence[str]:
        if not self.available():
            raise RemoteUnavailable(f"{self.ori} {self.name} UNAVAILABLE")
        nrn = msg.get("NRN")
        conn = self.store.conn
        columns = "nrn, state_ori, nic, fields, relief, entered"
        if nrn:
            rows = conn.execute(f"SELECT {columns} FROM nics_record WHERE nrn = ? AND status = 'active'",
                                (nrn.upper(),)).fetchall()
            asked = f"NRN/{nrn}"
        else:
            name, dob = msg.get("NAM") or "", msg.get("DOB") or ""
            rows = conn.execute(f"SELECT {columns} FROM nics_record WHERE name_key = ? AND dob = ? "
                                "AND status = 'active' ORDER BY nrn", (_name_key(name), dob)).fetchall()
            asked = f"NAM/{name} DOB/{dob}"
        if not rows:
            return [f"NO NICS RECORD {asked}"]
        lines: list[str] = []
        for row in rows:
            entry = self._entry(row)
            if lines:
                lines.append("")
            lines.append(HEADING)
            if entry.relief:
                lines.append(f"RELIEF GRANTED {entry.relief}")
            lines.append(f"NRN/{entry.nrn}")
            lines += [f"{c}/{v}" for c, v in entry.fields if c != "RLD"]
            lines.append(f"ORI/{entry.ori} NIC/{entry.nic} NTE/{entry.entered}")
        return lines

    # -- the index ------------------------------------------------------------------------------

    def _entry(self, row: tuple[Any, ...]) -> NicsEntry:
        nrn, ori, nic, fields, relief, entered = row
        when = dt.datetime.fromisoformat(entered)
        zone = getattr(self.context.settings, "timezone", None)
        return NicsEntry(nrn, ori, nic, tuple(tuple(pair) for pair in json.loads(fields)), relief,
                         (when.astimezone(zone) if zone else when).strftime("%Y%m%d"))

    def _next_nrn(self) -> str:
        # Deleted rows (nics forget) must not give their number again: AUTOINCREMENT-like, from the highest ever.
        conn = self.store.write()
        conn.execute("INSERT INTO nics_sequence (id, last) VALUES (1, 1) "
                     "ON CONFLICT(id) DO UPDATE SET last = last + 1")
        last = conn.execute("SELECT last FROM nics_sequence WHERE id = 1").fetchone()[0]
        return f"NR{last:010d}"

    def _now(self) -> str:
        return self.clock.now().astimezone(dt.timezone.utc).isoformat()
