"""Record validation (PROTOCOL.md 11, OAR 257-015-0050 (2) and (3)).

Every entering agency validates the records it entered: the switch sends it a
validation list, the agency checks each record against its case file and says
so, record by record or for the whole list; a record nobody vouched for in time
is retired.

* Due: a record on file (active or located) in a file that takes entries, in the
  state or national set, entered by an agency of this state, that is 60 to 90
  days old (by its ``entered`` date, switch local date) and was never validated,
  or whose last validation is a year old.  A record already on a list whose
  deadline has not come is not listed again.
* Lists: ``send_lists`` (the ``validation lists`` job every ``[validation]
  interval_days``, and the console's ``validation run``) gives each agency with
  records due one list, id ``VL`` + 6 digits, as ``U`` frames through the
  delivery queues (queued when the agency is not connected)::

      $.V. VALIDATION LIST VL000001
      TO OR9990100 TEST CITY POLICE DEPARTMENT
      LIST DATE 20270203 DEADLINE 20270305
      2 RECORD(S) DUE FOR VALIDATION
      NIC/W000100000 MKE/EW OCA/ACC-0001 NAM/TESTER, ACCEPT A
      NIC/V000100001 MKE/EV OCA/ACC-V-1 VIN/1TESTVIN000000009
      VALIDATE A RECORD WITH ITS MODIFY KEY AND VLN/<NAME>, E.G.
      MW.OR9990100.NAM/<NAME ON RECORD>.NIC/<NIC>.VLN/<NAME>
      OR CERTIFY THE WHOLE LIST: VCL.OR9990100.LST/VL000001.VLN/<NAME>
      RECORDS NOT VALIDATED BY 20270305 WILL BE RETIRED

  A list of more than ``PAGE_RECORDS`` records goes as several frames, each
  starting ``$.V. VALIDATION LIST <id> PAGE <n> OF <m>``.  Every list is kept
  (table ``validation_list``, its records in ``validation_item``) for the
  console's ``validation lists ORI``.
* Validation of one record: any modify key with ``VLN/<name>``; the modify is
  made as usual (VLN itself is not record data), and when it is accepted the
  record's validation (date, name, how) is kept (table ``validation_record``,
  by NIC) and the reply ends ``VALIDATED BY <name> <CCYYMMDD>``.
* Certification of a list: ``VCL.<ORI>.LST/<id>.VLN/<name>`` validates every
  record of the list still on file.
* Retirement: ``retire_due`` (hourly on switch time) takes each list whose
  deadline (``certify_days`` after it went out) has come; every record on it not
  validated since the list went out and still on file is retired: replaced in
  its index with status ``retired`` (not on file: no inquiry finds it, no change
  reaches it; kept for audit) and its agency gets a ``U`` frame::

      $.P. RECORD RETIRED - NOT VALIDATED
      NIC/W000100000 MKE/EW OCA/ACC-0001 NAM/TESTER, ACCEPT A
      ON VALIDATION LIST VL000001 OF 20270203, NOT VALIDATED BY 20270305
      THE RECORD IS NO LONGER ON FILE; IT IS KEPT FOR AUDIT

  Retirement lives in this module's table, so it is laid over the record files
  again whenever the handlers are built (start, reload).

Only the public API of the record files is used (``RecordFiles`` iteration,
``find``, ``index().replace``), so the storage under them may change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterator, Optional

import attrs
import structlog

from lems.base.errors import Reject
from lems.base.events import PRIORITY_ORDINARY, Notice, Note, Outcome, Transaction
from lems.files.records import ON_FILE, STATE_SETS
from lems.wire.message import Record

log = structlog.get_logger("lems.traffic.validation")

DUE_FROM_DAYS, DUE_TO_DAYS = 60, 90
PAGE_RECORDS = 100
RETIRED = "retired"
LIST_JOB, RETIRE_JOB = "validation lists", "validation retire"


def _years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _ymd(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat()


@attrs.frozen
class ListRow:
    list_id: str
    ori: str
    sent: dt.datetime
    deadline: dt.datetime
    certified: Optional[dt.datetime]
    certified_by: Optional[str]
    closed: Optional[dt.datetime]
    text: str
    records: int

    @property
    def state(self) -> str:
        if self.certified is not None:
            return "CERTIFIED"
        return "CLOSED" if self.closed is not None else "OUTSTANDING"

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "ListRow":
        when = lambda v: dt.datetime.fromisoformat(v) if v else None  # noqa: E731
        return cls(row[0], row[1], dt.datetime.fromisoformat(row[2]), dt.datetime.fromisoformat(row[3]),
                   when(row[4]), row[5], when(row[6]), row[7], int(row[8]))


@attrs.frozen
class Item:
    list_id: str
    nic: str
    file: str
    record_set: str
    mke: str
    oca: str
    ident: str

    def line(self) -> str:
        return f"NIC/{self.nic} MKE/{self.mke} OCA/{self.oca} {self.ident}"


@attrs.frozen
class RecordState:
    nic: str
    ori: str
    validated: Optional[dt.date]
    validated_by: Optional[str]
    how: Optional[str]
    list_id: Optional[str]
    retired: Optional[dt.datetime]


@attrs.frozen
class AgencyView:
    """The console's per-agency view: lists outstanding and the records at risk on them."""

    ori: str
    outstanding: tuple[ListRow, ...]
    at_risk: tuple[tuple[ListRow, Item], ...]
    retired: int


class Validation:
    """The validation lists, the VCL route step and the VLN modifies of one route table."""

    def __init__(self, routing: Any) -> None:
        self.routing = routing
        self.store = routing.store
        self.clock = routing.clock
        self.settings = routing.settings
        self.catalogue = routing.codec.catalogue
        self._mke: dict[str, str] = {}
        for key in self.catalogue.keys.values():  # the first entry key of each file, in catalogue order
            if key.action == "enter" and key.file and key.file not in self._mke:
                self._mke[key.file] = key.mke
        try:
            self.reapply_retirements()
        except Exception as exc:  # noqa: BLE001 - a store without the tables yet, a handler without files
            log.error("retirements not laid over the record files", error=repr(exc))

    # -- where records are ------------------------------------------------------------

    @property
    def certify_days(self) -> int:
        return int(self.settings.validation.certify_days)

    def _files(self) -> list[Any]:
        """The RecordFiles of every handler that keeps entered records (the route table's maintenance)."""
        out, seen = [], set()
        for route in self.routing.table.maintenance.values():
            handler = self.routing.handlers.get(route.handler)
            files = getattr(handler, "files", None)
            if files is not None and id(files) not in seen:
                seen.add(id(files))
                out.append(files)
        return out

    def find(self, nic: str) -> tuple[Optional[Record], Any]:
        for files in self._files():
            record = files.find(nic)
            if record is not None:
                return record, files
        return None, None

    def _records(self) -> Iterator[Record]:
        """The records of the files that take entries, in the state and national sets: read
        index by index, never the whole store (the inquiry-only data sets may hold millions)."""
        files_taking_entries = sorted(self.routing.table.maintenance)
        for files in self._files():
            for file in files_taking_entries:
                for record_set in STATE_SETS:
                    yield from files.index(file, record_set)

    def today(self, now: Optional[dt.datetime] = None) -> dt.date:
        return (now or self.clock.now()).astimezone(self.settings.timezone).date()

    # -- the tables ---------------------------------------------------------------------

    def record_state(self, nic: str) -> Optional[RecordState]:
        row = self.store.conn.execute("SELECT nic, ori, validated, validated_by, how, list_id, retired "
                                      "FROM validation_record WHERE nic = ?", (nic.upper(),)).fetchone()
        if row is None:
            return None
        return RecordState(row[0], row[1], dt.date.fromisoformat(row[2]) if row[2] else None, row[3], row[4],
                           row[5], dt.datetime.fromisoformat(row[6]) if row[6] else None)

    def _states(self) -> dict[str, tuple[Optional[str], Optional[str], Optional[str]]]:
        """NIC -> (validated, list_id, retired) for every record with validation state."""
        return {r[0]: (r[1], r[2], r[3]) for r in
                self.store.conn.execute("SELECT nic, validated, list_id, retired FROM validation_record")}

    _LIST_COLUMNS = ("SELECT l.list_id, l.ori, l.sent, l.certify_by, l.certified, l.certified_by, l.closed, l.text, "
                     "(SELECT COUNT(*) FROM validation_item i WHERE i.list_id = l.list_id) FROM validation_list l ")

    def list_row(self, list_id: str) -> Optional[ListRow]:
        row = self.store.conn.execute(self._LIST_COLUMNS + "WHERE l.list_id = ?", (list_id.upper(),)).fetchone()
        return ListRow.from_row(row) if row else None

    def lists(self, ori: Optional[str] = None) -> list[ListRow]:
        if ori is None:
            rows = self.store.conn.execute(self._LIST_COLUMNS + "ORDER BY l.sent, l.list_id")
        else:
            rows = self.store.conn.execute(self._LIST_COLUMNS + "WHERE l.ori = ? ORDER BY l.sent, l.list_id",
                                           (ori.upper(),))
        return [ListRow.from_row(r) for r in rows]

    def items(self, list_id: str) -> list[Item]:
        rows = self.store.conn.execute("SELECT list_id, nic, file, record_set, mke, oca, ident FROM validation_item "
                                       "WHERE list_id = ? ORDER BY nic", (list_id,))
        return [Item(*r) for r in rows]

    def _open_lists(self) -> dict[str, ListRow]:
        rows = self.store.conn.execute(self._LIST_COLUMNS + "WHERE l.certified IS NULL AND l.closed IS NULL")
        return {r[0]: ListRow.from_row(r) for r in rows}

    def validated(self, nic: str, ori: str, by: str, how: str, day: dt.date) -> None:
        """Keep one record's validation (inside the turn's transaction)."""
        self.store.write().execute(
            "INSERT INTO validation_record (nic, ori, validated, validated_by, how) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(nic) DO UPDATE SET validated = excluded.validated, validated_by = excluded.validated_by, "
            "how = excluded.how", (nic, ori, day.isoformat(), by, how))

    # -- what is due ---------------------------------------------------------------------

    def due(self, registry: Any, now: Optional[dt.datetime] = None) -> dict[str, list[Record]]:
        """The records due for validation, by entering agency (see the module notes)."""
        today = self.today(now)
        states, open_lists = self._states(), self._open_lists()
        home = self.settings.state
        out: dict[str, list[Record]] = {}
        for record in self._records():
            if record.status not in ON_FILE:
                continue
            agency = registry.agency(record.ori)
            if agency is None or agency.state != home:
                continue
            validated, list_id, retired = states.get(record.nic, (None, None, None))
            if retired:
                continue
            if list_id in open_lists:
                sent = self.today(open_lists[list_id].sent)
                if validated is None or dt.date.fromisoformat(validated) < sent:
                    continue  # waiting on a list already sent
            if validated is None:
                try:
                    entered = dt.datetime.strptime(record.entered, "%Y%m%d").date()
                except ValueError:
                    continue
                if not DUE_FROM_DAYS <= (today - entered).days <= DUE_TO_DAYS:
                    continue
            elif _years_after(dt.date.fromisoformat(validated), 1) > today:
                continue
            out.setdefault(record.ori, []).append(record)
        for records in out.values():
            records.sort(key=lambda r: r.nic)
        return dict(sorted(out.items()))

    def item_for(self, list_id: str, record: Record) -> Item:
        return Item(list_id, record.nic, record.file, record.record_set, self._mke.get(record.file, "-"),
                    record.get("OCA") or "-", self.identifier(record))

    def identifier(self, record: Record) -> str:
        """The record's main identifier as MFC/value: the file's own (files.toml ``identified_by``),
        else the name, else its first number field."""
        try:
            spec = self.catalogue.files[record.file]
            alternatives = list(spec.identified_by)
        except KeyError:
            alternatives = []
        alternatives += [("NAM",)] + [(code,) for code in self.catalogue.search_rule(record.file).numbers]
        for codes in alternatives:
            values = [record.get(code) for code in codes]
            if all(values):
                return " ".join(f"{c}/{v}" for c, v in zip(codes, values, strict=True))
        return f"NIC/{record.nic}"

    # -- sending the lists ----------------------------------------------------------------

    def _next_list_id(self) -> str:
        row = self.store.write().execute("SELECT MAX(CAST(SUBSTR(list_id, 3) AS INTEGER)) FROM validation_list"
                                         ).fetchone()
        return f"VL{(row[0] or 0) + 1:06d}"

    def list_frames(self, list_id: str, ori: str, agency_name: str, sent: dt.datetime, deadline: dt.datetime,
                    items: list[Item]) -> list[str]:
        pages = [items[i:i + PAGE_RECORDS] for i in range(0, len(items), PAGE_RECORDS)] or [[]]
        last = _ymd(self.today(deadline))
        frames = []
        for n, page in enumerate(pages, 1):
            head = f"$.V. VALIDATION LIST {list_id}" + (f" PAGE {n} OF {len(pages)}" if len(pages) > 1 else "")
            lines = [head, f"TO {ori} {agency_name}", f"LIST DATE {_ymd(self.today(sent))} DEADLINE {last}",
                     f"{len(items)} RECORD(S) DUE FOR VALIDATION", *(item.line() for item in page)]
            if n == len(pages):
                lines += ["VALIDATE A RECORD WITH ITS MODIFY KEY AND VLN/<NAME>, E.G.",
                          f"MW.{ori}.NAM/<NAME ON RECORD>.NIC/<NIC>.VLN/<NAME>",
                          f"OR CERTIFY THE WHOLE LIST: VCL.{ori}.LST/{list_id}.VLN/<NAME>",
                          f"RECORDS NOT VALIDATED BY {last} WILL BE RETIRED"]
            frames.append("\n".join(lines))
        return frames

    def send_lists(self, now: dt.datetime, registry: Any, presence: Any) -> tuple[list[Notice | Note], list[str]]:
        """One list per agency with records due: (notices for the core to deliver, a line per list)."""
        plan = self.routing.courier.plan(registry, presence)
        lines: list[str] = []
        conn = self.store.write()
        deadline = now + dt.timedelta(days=self.certify_days)
        for ori, records in self.due(registry, now).items():
            list_id = self._next_list_id()
            items = [self.item_for(list_id, r) for r in records]
            frames = self.list_frames(list_id, ori, registry.agency_name(ori), now, deadline, items)
            conn.execute("INSERT INTO validation_list (list_id, ori, sent, certify_by, text) VALUES (?, ?, ?, ?, ?)",
                         (list_id, ori, _iso(now), _iso(deadline), "\n\n".join(frames)))
            conn.executemany("INSERT INTO validation_item (list_id, nic, file, record_set, mke, oca, ident) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(i.list_id, i.nic, i.file, i.record_set, i.mke, i.oca, i.ident) for i in items])
            conn.executemany("INSERT INTO validation_record (nic, ori, list_id) VALUES (?, ?, ?) "
                             "ON CONFLICT(nic) DO UPDATE SET list_id = excluded.list_id",
                             [(i.nic, ori, list_id) for i in items])
            reached = self._to_agency(plan, ori, frames)
            plan.note("admin", event="VALIDATION LIST SENT", ori=ori, outcome="OK",
                      text=f"{list_id} {len(items)} RECORD(S) DEADLINE {_ymd(self.today(deadline))}; {reached}")
            lines.append(f"{ori} {list_id} {len(items)} record(s), deadline {_ymd(self.today(deadline))}: {reached}")
        return plan.notices, lines

    @staticmethod
    def _to_agency(plan: Any, ori: str, frames: list[str]) -> str:
        outcome = None
        for text in frames:
            outcome = plan.to_agency(ori, "U", text, PRIORITY_ORDINARY)
        if outcome is None or not outcome.reached:
            return "NOT DELIVERED (NO ACTIVE TERMINAL); KEPT FOR THE CONSOLE"
        return outcome.line()

    # -- retiring ---------------------------------------------------------------------------

    def retire_due(self, now: dt.datetime, registry: Any, presence: Any) -> tuple[list[Notice | Note], list[str]]:
        """Close every list whose deadline has come: its records not validated since are retired."""
        plan = self.routing.courier.plan(registry, presence)
        lines: list[str] = []
        conn = self.store.write()
        for row in sorted(self._open_lists().values(), key=lambda r: r.list_id):
            if now < row.deadline:
                continue
            sent = self.today(row.sent)
            retired = 0
            for item in self.items(row.list_id):
                state = self.record_state(item.nic)
                if state is not None and (state.retired or (state.validated and state.validated >= sent)):
                    continue
                record, files = self.find(item.nic)
                if record is None or record.status not in ON_FILE:
                    continue  # cleared or cancelled meanwhile: nothing left to retire
                files.index(record.file, record.record_set).replace(attrs.evolve(record, status=RETIRED))
                conn.execute("INSERT INTO validation_record (nic, ori, list_id, retired) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(nic) DO UPDATE SET retired = excluded.retired",
                             (item.nic, record.ori, row.list_id, _iso(now)))
                text = "\n".join([
                    "$.P. RECORD RETIRED - NOT VALIDATED", item.line(),
                    f"ON VALIDATION LIST {row.list_id} OF {_ymd(sent)}, NOT VALIDATED BY {_ymd(self.today(row.deadline))}",
                    "THE RECORD IS NO LONGER ON FILE; IT IS KEPT FOR AUDIT"])
                reached = self._to_agency(plan, record.ori, [text])
                plan.note("admin", event="RECORD RETIRED - NOT VALIDATED", ori=record.ori, outcome="OK",
                          text=f"NIC/{item.nic} LIST {row.list_id}; {reached}")
                retired += 1
            conn.execute("UPDATE validation_list SET closed = ? WHERE list_id = ?", (_iso(now), row.list_id))
            lines.append(f"{row.ori} {row.list_id} closed: {retired} record(s) retired")
        return plan.notices, lines

    def reapply_retirements(self) -> int:
        """Lay the retirements kept in the store over freshly built record files (start, reload)."""
        count = 0
        for (nic,) in self.store.conn.execute("SELECT nic FROM validation_record WHERE retired IS NOT NULL"
                                              ).fetchall():
            record, files = self.find(nic)
            if record is not None and record.status in ON_FILE:
                files.index(record.file, record.record_set).replace(attrs.evolve(record, status=RETIRED))
                count += 1
        return count

    # -- the console's views ------------------------------------------------------------------

    def agency_view(self, ori: str) -> AgencyView:
        ori = ori.upper()
        outstanding = tuple(r for r in self.lists(ori) if r.state == "OUTSTANDING")
        risk = []
        for row in outstanding:
            sent = self.today(row.sent)
            for item in self.items(row.list_id):
                state = self.record_state(item.nic)
                if state is not None and (state.retired or (state.validated and state.validated >= sent)):
                    continue
                record, _ = self.find(item.nic)
                if record is not None and record.status in ON_FILE:
                    risk.append((row, item))
        retired = self.store.conn.execute("SELECT COUNT(*) FROM validation_record WHERE ori = ? AND retired IS NOT NULL",
                                          (ori,)).fetchone()[0]
        return AgencyView(ori, outstanding, tuple(risk), int(retired))

    # -- VLN on a modify ----------------------------------------------------------------------

    def validating(self, step: Callable[[Transaction], Outcome]) -> Callable[[Transaction], Outcome]:
        """The maintenance step, with a modify's ``VLN/<name>`` kept as that record's validation."""
        def run(txn: Transaction) -> Outcome:
            msg = txn.message
            name = msg.get("VLN") if txn.spec.action == "modify" else None
            if not name:
                return step(txn)
            plain = attrs.evolve(msg, fields=tuple(pair for pair in msg.fields if pair[0] != "VLN"))
            outcome = step(attrs.evolve(txn, message=plain))
            if outcome.cls != "R":
                return outcome
            nic = (msg.get("NIC") or "").strip().upper()
            today = self.today(txn.received)
            self.validated(nic, msg.ori, name, f"MODIFY {msg.mke}", today)
            self.routing.trail.record("admin", None, event="RECORD VALIDATED", ori=msg.ori, mke=msg.mke,
                                      terminal=txn.terminal.id, operator=txn.operator.id, outcome="OK",
                                      text=f"NIC/{nic} VLN/{name}")
            return attrs.evolve(outcome, text=f"{outcome.text}\nVALIDATED BY {name} {_ymd(today)}")
        return run

    # -- VCL: certify a list ------------------------------------------------------------------

    def takes(self, spec: Any) -> bool:
        return spec.category == "validation"

    def __call__(self, txn: Transaction) -> Outcome:
        msg = txn.message
        list_id, name = (msg.get("LST") or "").upper(), msg.get("VLN") or ""
        row = self.list_row(list_id)
        if row is None:
            return Outcome("E", f"REJECT NOT ON FILE\nLST/{list_id}")
        if row.ori != msg.ori:
            raise Reject(".22.", f"NOT AUTHORIZED - VALIDATION LIST {list_id} IS FOR {row.ori}, NOT {msg.ori}")
        if row.certified is not None:
            return Outcome("E", f"REJECT VALIDATION LIST {list_id} ALREADY CERTIFIED "
                                f"{_ymd(self.today(row.certified))} BY {row.certified_by}")
        if row.closed is not None:
            return Outcome("E", f"REJECT VALIDATION LIST {list_id} DEADLINE {_ymd(self.today(row.deadline))} "
                                "PASSED - RECORDS NOT VALIDATED WERE RETIRED")
        today = self.today(txn.received)
        validated = gone = 0
        for item in self.items(list_id):
            record, _ = self.find(item.nic)
            if record is None or record.status not in ON_FILE:
                gone += 1
                continue
            self.validated(item.nic, msg.ori, name, f"VCL {list_id}", today)
            validated += 1
        self.store.write().execute("UPDATE validation_list SET certified = ?, certified_by = ? WHERE list_id = ?",
                                   (_iso(txn.received), name, list_id))
        self.routing.trail.record("admin", None, event="VALIDATION LIST CERTIFIED", ori=msg.ori, mke=msg.mke,
                                  terminal=txn.terminal.id, operator=txn.operator.id, outcome="OK",
                                  text=f"{list_id} {validated} RECORD(S) VLN/{name}")
        lines = [msg.ori, f"VCL ACCEPTED - VALIDATION LIST {list_id} CERTIFIED",
                 f"{validated} RECORD(S) VALIDATED BY {name} {_ymd(today)}"]
        if gone:
            lines.append(f"{gone} RECORD(S) ON THE LIST NO LONGER ON FILE")
        return Outcome("R", "\n".join(lines))
