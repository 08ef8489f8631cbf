"""The state prohibited persons file (PPF) and its reporting to NICS (PROTOCOL.md 9, OAR 257-010-0060).

The PPF's records are the ``prohibited`` file of the record handler the route
table's ``[[maintenance]]`` names (the state set, ``LEDS``); this module adds
what the rule asks of it, and nothing reaches into the handler beyond its
public calls (``inquire``, ``enter``, ``modify``, ``cancel``, ``refresh``).

* **Minimum information only** (``MINIMUM``): the catalogue refuses any other
  field code ``.12. <MFC> IS NOT MINIMUM INFORMATION`` (formats/leds.toml
  ``other_fields``) and ``PpfStep`` checks again, so an older catalogue cannot
  let one through.  ``COR`` defaults to the entering ORI.
* **Who**: policy (lems.core.policy) lets only designated agencies enter,
  modify and cancel, a court or the PSRB (grant ``relief``) relieve, and QPP
  only with ``PUR/F``: PPF data goes nowhere else than QPP, the NICS reporting
  and the dealer checks.
* **Relief** ``RPP.<ORI>.NIC/<nic>.RLD/<CCYYMMDD>[.OCA/<oca>]``: the record stays
  on file and carries the field ``RLD/<CCYYMMDD>`` (the contract with the dealer
  checks: a prohibited-file record with ``RLD`` is not a prohibition,
  ``is_prohibition``); QPP shows it under ``RELIEF GRANTED <date>`` without the
  file's prohibition caution; it goes to NICS at once.
* **Reporting** (table ``ppf_report``, one row per record): the change not yet
  sent (``enter``, ``modify``, ``cancel``, ``relief``), the NICS record number
  NICS gave, the date last sent and the fields as sent.  ``transmit`` sends every
  pending change to the NICS remote (lems.traffic.nics, ``[nics] destination``)
  as ``EDP``/``MDP``/``XDP``; replies then show ``NTD/<CCYYMMDD>`` and
  ``NRN/<nrn>``.  A record of the record files that was never reported counts
  as a new record (the first transmission sends the demo file).
* **Notices** to the control terminal agency (``S``), one per run::

      NICS TRANSMISSION 20260102 - 2 ENTERED 1 MODIFIED 0 CANCELLED 1 RELIEF
      NICS UNAVAILABLE - 4 CHANGES PENDING
      PPF RECONCILIATION 20260401 - 12 RECORDS 1 DISCREPANCIES

  and each reconciliation discrepancy to the submitting agency (``U``, queued
  when it is not connected)::

      PPF RECONCILIATION DISCREPANCY
      NIC/P000100000 NRN/NR0000000002
      SENT TO NICS NTD/20260102 - NOT IN NICS
      NAM/ROE, RICHARD DOB/19750505
      WILL BE SENT AGAIN WITH THE NEXT TRANSMISSION

  (or ``FIELDS DIFFER`` with a ``<MFC> PPF/<v> NICS/<v>`` line per field, ``IN NICS
  - NOT IN THE PPF (CANCELLED)``, ``IN NICS - NOT IN THE PPF``).  NICS is compared
  with the PPF as it is now: a change not sent yet is a discrepancy too.

Everything is journaled: each message to NICS with NICS's answer (kind ``out``,
MKE ``EDP``..., destination the NICS ORI, event ``TO NICS``), each run (``admin``
``NICS TRANSMISSION`` / ``PPF RECONCILIATION``), each first-file load another
process made (``PPF LOAD``, journaled by the running switch when it takes it).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

import attrs
import structlog

from lems.base.errors import Reject
from lems.base.events import PRIORITY_ORDINARY, PRIORITY_STATUS, Notice, Outcome, Transaction
from lems.files import replies
from lems.files.handlers import NotOnFile, NotYours, OnFile
from lems.traffic.remotes import RemoteRefused, RemoteUnavailable
from lems.wire.message import Message, Record

if TYPE_CHECKING:  # pragma: no cover
    from lems.traffic.routes import Routing

log = structlog.get_logger("lems.traffic.ppf")

FILE = "prohibited"
# The minimum information a PPF record may hold (PROTOCOL.md 9), in display order.
MINIMUM = ("NAM", "DOB", "SEX", "COR", "RAC", "SOC", "OLN", "OLS", "PPT", "ISD", "OCA")
RELIEF = "RLD"
# What each key may carry besides the minimum information.
KEY_FIELDS = {"EPP": frozenset(MINIMUM), "MPP": frozenset(MINIMUM) | {"NIC"},
              "XPP": frozenset({"NAM", "NIC", "OCA", "DOC"}), "RPP": frozenset({"NIC", RELIEF, "OCA"})}
ON_FILE = frozenset({"active", "located"})
PENDING_WORDS = {"enter": "ENTERED", "modify": "MODIFIED", "cancel": "CANCELLED", "relief": "RELIEF"}
DISCREPANCY = "PPF RECONCILIATION DISCREPANCY"

_savepoints = itertools.count(1)


def is_prohibition(record: Record) -> bool:
    """A PPF record that bars its person from firearms: on file and without relief (``RLD``)."""
    return record.file == FILE and record.status in ON_FILE and not record.get(RELIEF)


def mark_pending(conn: Any, rows: Iterable[tuple[str, str]], action: str, at: str) -> None:
    """New records (NIC, submitting ORI) to send with the next transmission (``lems ppf load``)."""
    conn.executemany("INSERT INTO ppf_report (nic, ori, pending, changed) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT(nic) DO UPDATE SET pending = excluded.pending, changed = excluded.changed",
                     [(nic, ori, action, at) for nic, ori in rows])


@attrs.frozen
class Report:
    """A record's reporting state."""

    nic: str
    ori: str
    pending: Optional[str]
    nrn: Optional[str]
    ntd: Optional[str]
    sent: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Counts:
    records: int
    pending: int
    relieved: int
    last_transmission: Optional[tuple[str, str]]   # (UTC ISO, the notice)
    last_reconciliation: Optional[tuple[str, str]]


@attrs.frozen
class Run:
    """What a transmission or reconciliation did: its notice and the frames to deliver."""

    summary: str
    notices: tuple[Notice, ...] = ()


class PpfReporting:
    """The PPF's reporting to NICS, over one route table (``Router.ppf``)."""

    def __init__(self, routing: "Routing") -> None:
        self.routing = routing
        route = routing.table.maintenance.get(FILE)
        self.handler = routing.handlers.get(route.handler) if route is not None else None
        self.record_set = route.record_set if route is not None else "LEDS"

    @property
    def store(self) -> Any:
        return self.routing.store

    @property
    def destination(self) -> str:
        nics = getattr(self.routing.settings, "nics", None)
        return getattr(nics, "destination", "WVNICS000")

    @property
    def remote(self) -> Any:
        return self.routing.remotes.get(self.destination)

    def refresh(self) -> None:
        """Records another process entered (``lems ppf load``): into the handler's indexes now."""
        refresh = getattr(self.handler, "refresh", None)
        if callable(refresh):
            refresh()

    # -- the records ---------------------------------------------------------------------------

    def records(self) -> list[Record]:
        """Every PPF record on file (the handler's own listing: a search for every record is no API)."""
        files = getattr(self.handler, "files", None)
        if files is None:
            return []
        return [r for r in files.index(FILE, self.record_set) if r.status in ON_FILE]

    def find(self, nic: str) -> Optional[Record]:
        """The PPF record with this NIC, on file (through the handler's NIC search)."""
        files = getattr(self.handler, "files", None)
        if files is not None:  # the record files' own NIC lookup
            record = files.find(nic)
            return record if record is not None and record.file == FILE and record.status in ON_FILE else None
        found = self.handler.inquire(Message("QPP", "", (("NIC", nic),)), FILE, self.record_set)
        return next((r for r in found if r.nic == nic), None)

    def report(self, nic: str) -> Optional[Report]:
        row = self.store.conn.execute("SELECT nic, ori, pending, nrn, ntd, sent FROM ppf_report WHERE nic = ?",
                                      (nic,)).fetchone()
        if row is None:
            return None
        return Report(*row[:5], tuple(tuple(p) for p in json.loads(row[5])) if row[5] else ())

    def shown(self, record: Record) -> Record:
        """The record as PPF replies show it: with ``NTD/`` and ``NRN/`` once sent."""
        report = self.report(record.nic)
        extra = []
        if report is not None and report.ntd:
            extra.append(("NTD", report.ntd))
        if report is not None and report.nrn:
            extra.append(("NRN", report.nrn))
        return attrs.evolve(record, fields=record.fields + tuple(extra)) if extra else record

    def changed(self, record: Record, action: str) -> None:
        """A change to send NICS: folded with the one already pending."""
        report = self.report(record.nic)
        if report is None or report.nrn is None:
            # NICS never had it: whatever changed, it is a new record to NICS (or, cancelled, nothing).
            pending = None if action == "cancel" else "enter"
        elif action == "cancel":
            pending = "cancel"
        elif action == "relief" or report.pending == "relief":
            pending = "relief"
        else:
            pending = "modify"
        conn = self.store.write()
        conn.execute("INSERT INTO ppf_report (nic, ori, pending, changed) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT(nic) DO UPDATE SET pending = excluded.pending, changed = excluded.changed",
                     (record.nic, record.ori, pending, self._now_iso()))

    def adopt(self) -> int:
        """Records on file that were never reported (the record files' own): pending entries now."""
        known = {row[0] for row in self.store.conn.execute("SELECT nic FROM ppf_report")}
        new = [(r.nic, r.ori) for r in self.records() if r.nic not in known]
        if new:
            mark_pending(self.store.write(), new, "enter", self._now_iso())
        return len(new)

    # -- sending -----------------------------------------------------------------------------------

    def _message(self, record: Optional[Record], report: Report) -> Optional[Message]:
        """The message for a pending change: EDP, MDP or XDP (None: nothing to send)."""
        if report.pending == "cancel" or record is None or record.status not in ON_FILE:
            if report.nrn is None:
                return None
            return Message("XDP", report.ori, (("NRN", report.nrn), ("NIC", report.nic)))
        fields = self._sent_fields(record)
        if report.nrn is None:
            return Message("EDP", record.ori, (("NIC", record.nic),) + fields)
        return Message("MDP", record.ori, (("NRN", report.nrn), ("NIC", record.nic)) + fields)

    @staticmethod
    def _sent_fields(record: Record) -> tuple[tuple[str, str], ...]:
        """The fields NICS gets: the minimum information and the relief date."""
        return tuple((c, v) for c, v in record.fields if c in MINIMUM or c == RELIEF)

    def _send(self, msg: Message) -> str:
        """One message to NICS, journaled with its answer (one ``out`` record: the message, then NICS's
        line); RemoteUnavailable / RemoteRefused as NICS says."""
        remote = self.remote
        text = wire_text(msg)

        def journal(outcome: str, answer: str) -> None:
            self.routing.trail.record("out", ori=msg.ori, mke=msg.mke, dests=self.destination, event="TO NICS",
                                      outcome=outcome, text=f"{text}\n{self.destination}: {answer}")

        if remote is None:
            journal(".01.", f"NO ROUTE TO {self.destination}")
            raise RemoteUnavailable(f"NO ROUTE TO {self.destination}")
        try:
            answer = remote.submit(msg)
        except RemoteUnavailable as exc:
            journal(".02.", str(exc))
            raise
        except RemoteRefused as exc:
            journal("REFUSED", str(exc))
            raise
        journal("OK", answer)
        return answer

    def send_one(self, nic: str, report: Optional[Report] = None) -> Optional[str]:
        """Send a record's pending change now: the action it counts as, or None when nothing went.

        NICS down raises RemoteUnavailable and leaves the change pending.  NICS not
        holding an NRN it gave (``nics forget``): the record goes again as a new one.
        """
        report = report or self.report(nic)
        if report is None or report.pending is None:
            return None
        record = self.find(nic)
        msg = self._message(record, report)
        if msg is None:
            self._sent(report, None, None, ())
            return None
        try:
            answer = self._send(msg)
        except RemoteRefused:
            if msg.mke == "XDP":  # NICS does not hold it: nothing left to cancel
                self._sent(report, None, self._today(), ())
                return "cancel"
            if msg.mke != "MDP" or record is None:
                raise
            msg = Message("EDP", record.ori, (("NIC", record.nic),) + self._sent_fields(record))
            answer = self._send(msg)
        nrn = _nrn_of(answer) or report.nrn
        if msg.mke == "XDP":
            self._sent(report, nrn, self._today(), ())
            return "cancel"
        self._sent(report, nrn, self._today(), self._sent_fields(record))
        return report.pending

    def _sent(self, report: Report, nrn: Optional[str], ntd: Optional[str],
              fields: Sequence[tuple[str, str]]) -> None:
        self.store.write().execute(
            "UPDATE ppf_report SET pending = NULL, nrn = ?, ntd = COALESCE(?, ntd), sent = ? WHERE nic = ?",
            (nrn, ntd, json.dumps([list(p) for p in fields]) if fields else None, report.nic))

    def pending(self) -> list[Report]:
        """Every change not yet sent, oldest first."""
        rows = self.store.conn.execute("SELECT nic, ori, pending, nrn, ntd FROM ppf_report "
                                       "WHERE pending IS NOT NULL ORDER BY changed, nic")
        return [Report(*row) for row in rows]

    def transmit(self, registry: Any, presence: Any) -> Run:
        """The daily transmission: every pending change to NICS, one notice to the control terminal."""
        self.refresh()
        self.adopt()
        nics = self.pending()
        counts = dict.fromkeys(PENDING_WORDS, 0)
        if self.remote is None or not self.remote.available():
            summary = f"NICS UNAVAILABLE - {len(nics)} CHANGES PENDING"
        else:
            summary = ""
            for done, report in enumerate(nics):
                nic = report.nic
                try:
                    action = self.send_one(nic, report)
                except RemoteUnavailable:  # went down in the middle: the rest waits
                    summary = f"NICS UNAVAILABLE - {len(nics) - done} CHANGES PENDING"
                    break
                except RemoteRefused as exc:
                    log.warning("NICS refused a change, kept pending", nic=nic, reason=str(exc))
                    continue
                if action is not None:
                    counts[action] += 1
            if not summary:
                summary = (f"NICS TRANSMISSION {self._today()} - " + " ".join(
                    f"{counts[action]} {word}" for action, word in PENDING_WORDS.items()))
        return self._ran("transmit", "NICS TRANSMISSION", summary, registry, presence)

    # -- relief -------------------------------------------------------------------------------------

    def relief_sent(self, nic: str) -> str:
        """Relief goes to NICS at once: the reply's line saying whether it went."""
        try:
            self.send_one(nic)
        except RemoteUnavailable:
            return "NICS UNAVAILABLE - RELIEF PENDING, SENT WITH THE NEXT TRANSMISSION"
        except RemoteRefused as exc:
            return f"NICS REFUSED THE RELIEF ({exc}) - PENDING, SENT WITH THE NEXT TRANSMISSION"
        report = self.report(nic)
        return f"RELIEF SENT TO NICS NRN/{report.nrn} NTD/{report.ntd}" if report and report.nrn else \
            "RELIEF RECORDED"

    # -- reconciliation -------------------------------------------------------------------------------

    def reconcile(self, registry: Any, presence: Any) -> Run:
        """NICS's report compared with the PPF: each discrepancy to the submitting agency, a summary."""
        self.refresh()
        remote = self.remote
        try:
            if remote is None:
                raise RemoteUnavailable(f"NO ROUTE TO {self.destination}")
            entries = remote.report()
        except RemoteUnavailable:
            return self._ran("reconcile", "PPF RECONCILIATION",
                             f"PPF RECONCILIATION {self._today()} - NICS UNAVAILABLE, NOT DONE", registry, presence)
        self.routing.trail.record("in", ori=self.destination, mke="RPT", event="FROM NICS", outcome="OK",
                                  text=f"NICS REPORT {len(entries)} RECORDS")
        by_nrn = {e.nrn: e for e in entries}
        plan = self.routing.courier.plan(registry, presence)
        found: list[tuple[str, str, str, str, list[str]]] = []  # (ori, nic, nrn, what, more lines)
        compared = 0
        conn = self.store.conn
        rows = conn.execute("SELECT nic, ori, pending, nrn, ntd FROM ppf_report WHERE nrn IS NOT NULL "
                            "ORDER BY nic").fetchall()
        again = "WILL BE SENT AGAIN WITH THE NEXT TRANSMISSION"
        for nic, ori, pending, nrn, ntd in rows:
            # Compared with the PPF as it is now: a change not sent yet (NICS was down) is a
            # discrepancy too, which the pending change will mend.
            entry = by_nrn.pop(nrn, None)
            record = self.find(nic)
            if record is None and entry is None:
                continue  # cancelled on both sides: nothing left to compare
            compared += 1
            if record is None:
                if entry is not None:
                    found.append((ori, nic, nrn, "IN NICS - NOT IN THE PPF (CANCELLED)",
                                  [f"NAM/{entry.get('NAM') or ''} DOB/{entry.get('DOB') or ''}",
                                   "CANCEL " + again]))
                    if pending is None:
                        self._repend(nic, "cancel", nrn)
                continue
            ident = [f"NAM/{record.get('NAM', '')} DOB/{record.get('DOB', '')}"]
            if entry is None:
                found.append((record.ori, nic, nrn, f"SENT TO NICS NTD/{ntd} - NOT IN NICS", ident + [again]))
                self._repend(nic, "enter", None)
                continue
            differs = _differences(dict(self._sent_fields(record)), dict(entry.fields))
            if differs:
                found.append((record.ori, nic, nrn, "FIELDS DIFFER", ident + differs + [again]))
                if pending is None:
                    self._repend(nic, "modify", nrn)
        known = {row[0] for row in conn.execute("SELECT nrn FROM ppf_report WHERE nrn IS NOT NULL")}
        for entry in by_nrn.values():
            if entry.nrn in known:
                continue
            compared += 1
            found.append((entry.ori, entry.nic, entry.nrn, "IN NICS - NOT IN THE PPF",
                          [f"NAM/{entry.get('NAM') or ''} DOB/{entry.get('DOB') or ''}"]))
        for ori, nic, nrn, what, more in found:
            text = "\n".join([DISCREPANCY, f"NIC/{nic} NRN/{nrn}", what, *more])
            if registry.agency(ori) is None:
                log.warning("discrepancy for an agency not in the registry", ori=ori, nic=nic)
                continue
            try:
                plan.to_agency(ori, "U", text, PRIORITY_ORDINARY)
            except Exception as exc:  # noqa: BLE001 - one that cannot go is logged; the others go
                log.error("discrepancy not sent", ori=ori, nic=nic, error=repr(exc))
            self.routing.trail.record("admin", ori=ori, event="PPF RECONCILIATION DISCREPANCY", outcome="OK",
                                      text=f"NIC/{nic} NRN/{nrn} {what}")
        summary = f"PPF RECONCILIATION {self._today()} - {compared} RECORDS {len(found)} DISCREPANCIES"
        run = self._ran("reconcile", "PPF RECONCILIATION", summary, registry, presence, plan)
        return run

    def _repend(self, nic: str, action: str, nrn: Optional[str]) -> None:
        self.store.write().execute("UPDATE ppf_report SET pending = ?, nrn = ?, changed = ? WHERE nic = ?",
                                   (action, nrn, self._now_iso(), nic))

    # -- runs, notices, counts ----------------------------------------------------------------------

    def _ran(self, kind: str, event: str, summary: str, registry: Any, presence: Any, plan: Any = None) -> Run:
        plan = plan or self.routing.courier.plan(registry, presence)
        for agency in sorted(registry.agencies.values(), key=lambda a: a.ori):
            if agency.control:
                try:
                    plan.to_agency(agency.ori, "S", summary, PRIORITY_STATUS)
                except Exception as exc:  # noqa: BLE001
                    log.error("PPF notice not sent", ori=agency.ori, error=repr(exc))
        self.store.write().execute("INSERT INTO ppf_run (kind, at, summary) VALUES (?, ?, ?)",
                                   (kind, self._now_iso(), summary))
        self.routing.trail.record("admin", event=event, outcome="OK", text=summary)
        log.info("ppf run", kind=kind, summary=summary)
        return Run(summary, tuple(n for n in plan.notices if isinstance(n, Notice)))

    def counts(self) -> Counts:
        self.refresh()
        records = self.records()
        known = {row[0] for row in self.store.conn.execute("SELECT nic FROM ppf_report")}
        pending = self.store.conn.execute("SELECT COUNT(*) FROM ppf_report WHERE pending IS NOT NULL").fetchone()[0]
        pending += sum(1 for r in records if r.nic not in known)

        def last(kind: str) -> Optional[tuple[str, str]]:
            row = self.store.conn.execute("SELECT at, summary FROM ppf_run WHERE kind = ? ORDER BY id DESC LIMIT 1",
                                          (kind,)).fetchone()
            return (row[0], row[1]) if row else None

        return Counts(len(records), pending, sum(1 for r in records if r.get(RELIEF)), last("transmit"),
                      last("reconcile"))

    def tick(self) -> None:
        """Every second: records another process loaded into the indexes, and each such load journaled once."""
        self.refresh()
        rows = self.store.conn.execute("SELECT id, ori, source, entered, skipped, first_nic, last_nic "
                                       "FROM ppf_load WHERE journaled = 0 ORDER BY id").fetchall()
        for load_id, ori, source, entered, skipped, first, last in rows:
            span = f" NIC/{first} TO NIC/{last}" if first else ""
            self.routing.trail.record("admin", ori=ori, mke="EPP", event="PPF LOAD", outcome="OK",
                                      text=f"{entered} ENTERED {skipped} DUPLICATES SKIPPED{span} FROM {source}"[:500])
            self.store.write().execute("UPDATE ppf_load SET journaled = 1 WHERE id = ?", (load_id,))

    def _now_iso(self) -> str:
        return self.routing.clock.now().astimezone(dt.timezone.utc).isoformat()

    def _today(self) -> str:
        zone = getattr(self.routing.settings, "timezone", None)
        now = self.routing.clock.now()
        return (now.astimezone(zone) if zone else now).strftime("%Y%m%d")


def wire_text(msg: Message) -> str:
    return ".".join([msg.mke, msg.ori, *(f"{c}/{v}" for c, v in msg.fields)])


def _nrn_of(answer: str) -> Optional[str]:
    for word in answer.split():
        if word.startswith("NRN/"):
            return word[4:]
    return None


def _differences(ppf: dict[str, str], nics: dict[str, str]) -> list[str]:
    out = []
    for code in (*MINIMUM, RELIEF):
        if ppf.get(code) != nics.get(code):
            out.append(f"{code} PPF/{ppf.get(code) or '(NONE)'} NICS/{nics.get(code) or '(NONE)'}")
    return out


# -- the route step ------------------------------------------------------------------------------------


class PpfStep:
    """The route step for the PPF keys: QPP, EPP, MPP, XPP and RPP."""

    def __init__(self, routing: "Routing", reporting: PpfReporting) -> None:
        self.routing = routing
        self.reporting = reporting

    def takes(self, spec: Any) -> bool:
        return spec.file == FILE and self.reporting.handler is not None

    def __call__(self, txn: Transaction) -> Outcome:
        self.reporting.refresh()
        msg, spec = txn.message, txn.spec
        if spec.action == "inquiry":
            return self._inquiry(txn)
        allowed = KEY_FIELDS.get(msg.mke, frozenset(MINIMUM) | {"NIC", "DOC"})
        for code, _ in msg.fields:
            if code not in allowed:
                raise Reject(".12.", f"{code} IS NOT MINIMUM INFORMATION")
        if msg.mke == "RPP":
            return self._relief(txn)
        return self._maintain(txn)

    # -- QPP -------------------------------------------------------------------------------------

    def _inquiry(self, txn: Transaction) -> Outcome:
        msg, spec = txn.message, txn.spec
        codec = self.routing.codec
        file = codec.file(FILE)
        route = self.routing.table.inquiries.get(msg.mke)
        sets = route.sets if route is not None else (self.reporting.record_set,)
        handler = self.reporting.handler
        lines: list[str] = []
        for record_set in sets:
            if len(sets) > 1:
                lines.append(replies.section_heading(record_set))
            try:
                records = list(self.routing.timed(handler.inquire, msg, FILE, record_set))
            except Exception as exc:  # noqa: BLE001 - a failed handler is a .30. section
                log.error("handler failed", file=FILE, record_set=record_set, error=repr(exc))
                if len(sets) == 1:
                    raise Reject(".30.", f"FILE HANDLER UNAVAILABLE OR FAILED FOR {msg.mke}") from None
                lines.append(f".30. {record_set} {file.record_word} FILE HANDLER UNAVAILABLE OR FAILED")
                continue
            if not records:
                lines.append(replies.no_record_line(record_set, file.record_word, replies.criteria_text(msg, spec)))
            for record in records:
                lines += self.block(record, txn.registry.agency_name(record.ori))
        return Outcome("R", "\n".join(lines))

    def block(self, record: Record, agency_name: str) -> list[str]:
        """A PPF hit: a relieved record under ``RELIEF GRANTED <date>`` and without the prohibition caution."""
        file = self.routing.codec.file(FILE)
        shown = self.reporting.shown(record)
        if record.get(RELIEF):
            return [f"RELIEF GRANTED {record.get(RELIEF)}"] + replies.hit_block(
                attrs.evolve(shown, caution=None), attrs.evolve(file, caution=None), agency_name)
        return replies.hit_block(shown, file, agency_name, self.routing.codec.catalogue.cautions)

    # -- EPP, MPP, XPP --------------------------------------------------------------------------

    def _maintain(self, txn: Transaction) -> Outcome:
        msg, spec = txn.message, txn.spec
        file = self.routing.codec.file(FILE)
        if spec.action == "enter" and not msg.has("COR"):
            msg = attrs.evolve(msg, fields=msg.fields + (("COR", msg.ori),))
        record = self._call(spec.action, msg, txn)
        if not isinstance(record, Record):
            return record  # a refusal's reply
        self.reporting.changed(record, spec.action)
        if spec.action == "enter":
            lines = replies.entry_accepted(msg, file, record.nic)
        else:
            lines = replies.maintenance_ack(msg, spec, file, record)
            report = self.reporting.report(record.nic)
            if report is not None and report.nrn:
                lines.append(f"NTD/{report.ntd} NRN/{report.nrn}")
        return Outcome("R", "\n".join(lines))

    def _call(self, action: str, msg: Message, txn: Transaction) -> Record | Outcome:
        """The handler's enter/modify/cancel inside a savepoint; a refusal as its reply."""
        handler = self.reporting.handler
        file = self.routing.codec.file(FILE)
        method = getattr(handler, action, None)
        if not callable(method):
            raise Reject(".01.", f"{msg.mke} NOT TAKEN - THE {file.title} FILE HANDLER DOES NOT TAKE IT")
        name = f"ppf_{next(_savepoints)}"
        conn = self.routing.store.write()
        conn.execute(f"SAVEPOINT {name}")
        try:
            record = method(msg, FILE, self.reporting.record_set)
        except OnFile as exc:
            conn.execute(f"RELEASE {name}")
            on_file = exc.record
            return Outcome("E", "\n".join(["REJECT ON FILE"] + self.block(on_file,
                                                                          txn.registry.agency_name(on_file.ori))))
        except NotOnFile:
            conn.execute(f"RELEASE {name}")
            return Outcome("E", "\n".join(replies.reject_not_on_file(txn.message)))
        except NotYours as exc:
            conn.execute(f"RELEASE {name}")
            raise Reject(".22.", f"NOT AUTHORIZED - ONLY THE ENTERING AGENCY {exc.record.ori} MAY "
                                 f"{action.upper()} NIC/{exc.record.nic}") from None
        except Exception as exc:  # noqa: BLE001 - a handler's failure is .30., never a dead switch
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            log.error("handler failed", mke=msg.mke, action=action, error=repr(exc))
            raise Reject(".30.", f"FILE HANDLER UNAVAILABLE OR FAILED FOR {msg.mke}") from None
        conn.execute(f"RELEASE {name}")
        return record

    # -- RPP ----------------------------------------------------------------------------------------

    def _relief(self, txn: Transaction) -> Outcome:
        msg = txn.message
        nic = (msg.get("NIC") or "").upper()
        date = msg.get(RELIEF) or ""
        record = self.reporting.find(nic) if nic.startswith(self.routing.codec.file(FILE).letter or "P") else None
        if record is None:
            return Outcome("E", "\n".join(replies.reject_not_on_file(msg)))
        if record.get(RELIEF):
            return Outcome("E", "\n".join([f"REJECT - RELIEF ALREADY GRANTED {record.get(RELIEF)}"]
                                          + self.block(record, txn.registry.agency_name(record.ori))))
        # The relief is the switch's change to the record on the court's or board's word: made as
        # a modify in the entering agency's name (only it may change its record), journaled as the RPP.
        change = Message("MPP", record.ori, (("NIC", nic), (RELIEF, date)))
        changed = self._call("modify", change, txn)
        if not isinstance(changed, Record):
            return changed
        self.reporting.changed(changed, "relief")
        sent = self.reporting.relief_sent(nic)
        lines = [msg.ori, f"{msg.mke} ACCEPTED - RELIEF GRANTED {self.routing.codec.file(FILE).title}"]
        if changed.get("NAM"):
            lines.append(f"NAM/{changed.get('NAM')}")
        lines.append(f"NIC/{changed.nic} OCA/{changed.get('OCA', '')}")
        if msg.get("OCA"):
            lines.append(f"RELIEF OCA/{msg.get('OCA')}")
        lines += [f"RELIEF GRANTED {date}", sent]
        return Outcome("R", "\n".join(lines))
