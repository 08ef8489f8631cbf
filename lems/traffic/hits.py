"""Hit confirmation (PROTOCOL.md 5.4): YQ checked and delivered, YR relayed, requests timed.

Sans-IO.  Requests live in the store (table ``hit_request``) so their timers
survive a restart; ``tick`` compares them with the injected clock.  Deliveries are
planned through ``lems.traffic.delivery.Courier`` (queued when the agency is not
connected), with hit confirmation priority, and carried out by the core.

A YQ is checked before it is delivered:

* the NIC is on file (``.12.`` otherwise) and was entered by the destination ORI (``.12.``);
* RTY names the file of the NIC (``rty`` in formats/files.toml: WP wanted W,
  VE vehicle V, ...) (``.12.``);
* the data set identifies the record (the file's ``identified_by``: persons
  need NAM, vehicles VIN or LIC, ...) (``.13.``), and every identifier of
  ``[hit_confirmation] compared`` given must equal the record's (``.12.``).

Timers: urgent (PRI/U) ``[hits] urgent_minutes`` (10), routine ``routine_minutes``
(60); a ``YR`` with ``CNF/P`` and ``TIM/<minutes>`` sets the wait to TIM.  When a
wait runs out the requester's agency gets a ``U`` notice and the switch sends the
next request (RNO/2, then RNO/3) to the entering agency itself; when the wait
for RNO/3 runs out the control terminal agency is notified and the request is
``expired``.  A YR (CNF/Y or CNF/N) closes the request, also after it expired.

Texts (LF between lines; ``*<control>`` only when the requester gave one).
Delivered YQ and relayed YR (class ``U``); the body is the message's fields::

    YQ.OR9990100.OR9990200
    *YQCTL00001
    TXT
    RTY/WP.RNO/1.PRI/U.OCA/ANY.NIC/W000000001.NAM/DOE, JOHN Q.DOB/19800101

A request the switch sends itself has RNO/2 or RNO/3 and one more line:
``RNO/2 SENT BY THE SWITCH - NO RESPONSE TO RNO/1 IN 10 MINUTES``.

Replies (class ``R``)::

    YQ ACCEPTED FOR OR9990200             YR ACCEPTED FOR OR9990100
    *YQCTL00001                           *YQCTL00001
    NIC/W000000001 RNO/1 PRI/U            NIC/W000000001 CNF/Y - REQUEST CLOSED
    OR9990200 DELIVERED                   OR9990100 DELIVERED
    RESPONSE DUE WITHIN 10 MINUTES

(``CNF/P - CONFIRMATION DUE WITHIN 15 MINUTES``, ``- NO OPEN REQUEST ON FILE``,
``- REQUEST CLOSED AFTER IT EXPIRED`` for the other YR cases.)

Requester notice on expiry (class ``U``)::

    HIT CONFIRMATION NOT ANSWERED
    *YQCTL00001
    NIC/W000000001 RNO/1 PRI/U TO OR9990200 - NO RESPONSE IN 10 MINUTES
    SWITCH SENT RNO/2 TO OR9990200
    (after RNO/3: NO RESPONSE TO 3 REQUESTS - CONTROL TERMINAL AGENCY OR9990000 NOTIFIED)

Control terminal agency notice (class ``U``)::

    HIT CONFIRMATION UNANSWERED AFTER 3 REQUESTS
    *YQCTL00001
    NIC/W000000001 PRI/U REQUESTED BY OR9990100 FROM OR9990200
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any, Optional

import attrs
import structlog

from lems.base.clock import UTC
from lems.base.errors import Reject
from lems.base.events import PRIORITY_HIT, Notice, Outcome, Presence, Transaction
from lems.wire.message import Message, Record
from lems.files.records import normalize_number

if TYPE_CHECKING:  # pragma: no cover
    from lems.base.registry import Registry
    from lems.traffic.delivery import AgencyOutcome, Plan
    from lems.traffic.routes import Routing


# The RTY -> file, the data set each RTY needs and the identifiers compared are
# catalogue data: formats/files.toml rty, identified_by, [hit_confirmation] compared.
LIVE = ("open", "pending")
NOT_CLOSED = ("open", "pending", "expired")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _minutes(value: float) -> str:
    return f"{value:g}"


@attrs.frozen
class HitRequest:
    """One hit confirmation request the switch is timing (the console's view)."""

    id: int
    nic: str
    requester: str
    terminal: str
    entering: str
    control: Optional[str]
    priority: str
    rno: int
    fields: tuple[tuple[str, str], ...]
    wait: float
    opened: str
    due: str
    state: str
    answer: Optional[str]

    COLUMNS = "id, nic, requester, terminal, entering, control, priority, rno, fields, wait, opened, due, state, answer"

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "HitRequest":
        values = list(row)
        values[8] = tuple(tuple(pair) for pair in json.loads(values[8]))
        return cls(*values)


def fields_text(fields: tuple[tuple[str, str], ...]) -> str:
    return ".".join(f"{code}/{value}" for code, value in fields)


def message_text(mke: str, sender: str, dest: str, control: Optional[str],
                 fields: tuple[tuple[str, str], ...], extra: tuple[str, ...] = ()) -> str:
    lines = [f"{mke}.{sender}.{dest}"]
    if control:
        lines.append(f"*{control}")
    lines += ["TXT", fields_text(fields), *extra]
    return "\n".join(lines)


def _same(code: str, asked: str, on_file: str) -> bool:
    if code == "NAM":
        return " ".join(asked.replace(",", ", ").split()) == " ".join(on_file.upper().replace(",", ", ").split())
    return normalize_number(asked) == normalize_number(on_file)


class HitConfirmation:
    """The route step for YQ and YR, and the timers of open requests."""

    def __init__(self, routing: "Routing") -> None:
        self.routing = routing
        self.store = routing.store
        self.settings = routing.settings
        self.clock = routing.clock
        self.courier = routing.courier
        self.trail = routing.trail
        self.log = structlog.get_logger("lems.traffic.hits")

    def wait_for(self, priority: str) -> float:
        return self.settings.hit_urgent_minutes if priority == "U" else self.settings.hit_routine_minutes

    # -- checks -----------------------------------------------------------------------

    def find_record(self, nic: str) -> Optional[Record]:
        """The record by NIC from whichever file handler holds record files."""
        for handler in self.routing.handlers.values():
            files = getattr(handler, "files", None)
            if files is not None and hasattr(files, "find"):
                record = files.find(nic)
                if record is not None and record.status in ("active", "located"):
                    return record
        return None

    def check_request(self, msg: Message) -> Record:
        nic, rty, dest = msg.get("NIC", ""), msg.get("RTY", ""), msg.dests[0]
        record = self.find_record(nic)
        if record is None:
            raise Reject(".12.", f"INVALID FIELD NIC - NIC/{nic} NOT ON FILE")
        catalogue = self.routing.codec.catalogue
        confirms = catalogue.file_for_rty(rty)
        if confirms is None or confirms.letter != nic[:1]:
            raise Reject(".12.", f"INVALID FIELD RTY - RTY/{rty} DOES NOT CONFIRM NIC/{nic} "
                                 f"({self.routing.codec.file(record.file).title})")
        if record.ori != dest:
            raise Reject(".12.", f"INVALID FIELD DEST - NIC/{nic} WAS ENTERED BY {record.ori}, NOT {dest}")
        present = set(msg.field_map())
        if not any(all(code in present for code in alt) for alt in confirms.identified_by):
            wanted = " OR ".join("+".join(alt) for alt in confirms.identified_by)
            raise Reject(".13.", f"MANDATORY FIELD MISSING - DATA SET FOR RTY/{rty} NEEDS {wanted}")
        for code in catalogue.compared:
            asked = msg.get(code)
            on_file = [value for name, value in record.fields if name == code]
            if asked is not None and on_file and not any(_same(code, asked, v) for v in on_file):
                raise Reject(".12.", f"INVALID FIELD {code} - DOES NOT MATCH NIC/{nic}")
        return record

    # -- YQ and YR --------------------------------------------------------------------

    def __call__(self, txn: Transaction) -> Outcome:
        msg = txn.message
        dest = msg.dests[0]
        if len(dest) != 9:
            raise Reject(".01.", f"{msg.mke} GOES TO ONE ORI, NOT {dest}")
        problem = self.courier.destination_problem(txn.registry, dest, msg.mke)
        if problem is not None:
            raise problem
        plan = self.courier.plan(txn.registry, txn.presence)
        if msg.mke == "YQ":
            return plan.outcome("R", self.request(txn, plan))
        return plan.outcome("R", self.response(txn, plan))

    @staticmethod
    def _deliver(plan: "Plan", ori: str, text: str) -> "AgencyOutcome":
        outcome = plan.to_agency(ori, "U", text, PRIORITY_HIT)
        if not outcome.reached:
            raise Reject(".04.", f"QUEUE FULL FOR {' '.join(outcome.full)}, MESSAGE NOT QUEUED")
        return outcome

    def request(self, txn: Transaction, plan: "Plan") -> str:
        msg = txn.message
        self.check_request(msg)
        dest, nic, priority = msg.dests[0], msg.get("NIC", ""), msg.get("PRI", "U")
        rno = int(msg.get("RNO", "1"))
        outcome = self._deliver(plan, dest, message_text("YQ", msg.ori, dest, msg.control, msg.fields))
        now = self.clock.now()
        wait = self.wait_for(priority)
        conn = self.store.write()
        values = (txn.terminal.id, msg.control, priority, rno, json.dumps(msg.fields), wait,
                  _iso(now + dt.timedelta(minutes=wait)))
        # A requester's own RNO/2 or RNO/3 continues its open request instead of starting another.
        row = conn.execute("SELECT id FROM hit_request WHERE nic = ? AND requester = ? AND entering = ? "
                           f"AND state IN {LIVE} ORDER BY id DESC LIMIT 1", (nic, msg.ori, dest)).fetchone()
        if row is not None:
            conn.execute("UPDATE hit_request SET terminal = ?, control = ?, priority = ?, rno = ?, fields = ?, "
                         "wait = ?, due = ?, state = 'open' WHERE id = ?", (*values, row[0]))
        else:
            conn.execute("INSERT INTO hit_request (nic, requester, entering, terminal, control, priority, rno, "
                         "fields, wait, due, opened, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                         (nic, msg.ori, dest, *values, _iso(now)))
        lines = [f"YQ ACCEPTED FOR {dest}"] + ([f"*{msg.control}"] if msg.control else [])
        lines += [f"NIC/{nic} RNO/{rno} PRI/{priority}", outcome.line(),
                  f"RESPONSE DUE WITHIN {_minutes(wait)} MINUTES"]
        return "\n".join(lines)

    def response(self, txn: Transaction, plan: "Plan") -> str:
        msg = txn.message
        requester, nic, cnf = msg.dests[0], msg.get("NIC", ""), msg.get("CNF", "")
        conn = self.store.write()
        row = conn.execute("SELECT id, state FROM hit_request WHERE nic = ? AND requester = ? AND entering = ? "
                           f"AND state IN {NOT_CLOSED} ORDER BY id DESC LIMIT 1",
                           (nic, requester, msg.ori)).fetchone()
        if row is None and self.find_record(nic) is None:
            raise Reject(".12.", f"INVALID FIELD NIC - NIC/{nic} NOT ON FILE AND NO OPEN REQUEST FOR IT")
        outcome = self._deliver(plan, requester, message_text("YR", msg.ori, requester, msg.control, msg.fields))
        now = self.clock.now()
        if row is None:
            status = f"NIC/{nic} CNF/{cnf} - NO OPEN REQUEST ON FILE"
        elif cnf == "P":
            wait = float(msg.get("TIM", "0"))
            conn.execute("UPDATE hit_request SET state = 'pending', answer = ?, wait = ?, due = ? WHERE id = ?",
                         (cnf, wait, _iso(now + dt.timedelta(minutes=wait)), row[0]))
            status = f"NIC/{nic} CNF/P - CONFIRMATION DUE WITHIN {_minutes(wait)} MINUTES"
        else:
            conn.execute("UPDATE hit_request SET state = 'closed', answer = ?, closed = ? WHERE id = ?",
                         (cnf, _iso(now), row[0]))
            status = f"NIC/{nic} CNF/{cnf} - REQUEST CLOSED" + (" AFTER IT EXPIRED" if row[1] == "expired" else "")
        lines = [f"YR ACCEPTED FOR {requester}"] + ([f"*{msg.control}"] if msg.control else [])
        lines += [status, outcome.line()]
        return "\n".join(lines)

    # -- timers ---------------------------------------------------------------------------

    def tick(self, registry: "Registry", presence: Presence) -> list[Notice]:
        """Expire the requests whose wait ran out; the notices to deliver."""
        now = _iso(self.clock.now())
        rows = self.store.conn.execute(f"SELECT {HitRequest.COLUMNS} FROM hit_request WHERE state IN {LIVE} "
                                       "AND due <= ? ORDER BY due, id", (now,)).fetchall()
        if not rows:
            return []
        plan = self.courier.plan(registry, presence)
        for row in rows:
            self.expire(plan, registry, HitRequest.from_row(row))
        return plan.notices

    def expire(self, plan: "Plan", registry: "Registry", req: HitRequest) -> None:
        head = ["HIT CONFIRMATION NOT ANSWERED"] + ([f"*{req.control}"] if req.control else [])
        head.append(f"NIC/{req.nic} RNO/{req.rno} PRI/{req.priority} TO {req.entering} - "
                    f"NO RESPONSE IN {_minutes(req.wait)} MINUTES")
        conn = self.store.write()
        if req.rno < 3:
            rno = req.rno + 1
            fields = tuple((code, str(rno) if code == "RNO" else value) for code, value in req.fields)
            note = (f"RNO/{rno} SENT BY THE SWITCH - NO RESPONSE TO RNO/{req.rno} IN {_minutes(req.wait)} MINUTES",)
            self._send(plan, req.entering, message_text("YQ", req.requester, req.entering, req.control, fields, note))
            self._send(plan, req.requester, "\n".join(head + [f"SWITCH SENT RNO/{rno} TO {req.entering}"]))
            wait = self.wait_for(req.priority)
            conn.execute("UPDATE hit_request SET rno = ?, fields = ?, wait = ?, due = ?, state = 'open' WHERE id = ?",
                         (rno, json.dumps(fields), wait, _iso(self.clock.now() + dt.timedelta(minutes=wait)),
                          req.id))
            return
        control = next((a.ori for a in registry.agencies.values() if a.control), None)
        tail = (f"NO RESPONSE TO 3 REQUESTS - CONTROL TERMINAL AGENCY {control} NOTIFIED" if control
                else "NO RESPONSE TO 3 REQUESTS")
        self._send(plan, req.requester, "\n".join(head + [tail]))
        if control:
            self._send(plan, control, "\n".join(
                ["HIT CONFIRMATION UNANSWERED AFTER 3 REQUESTS"] + ([f"*{req.control}"] if req.control else [])
                + [f"NIC/{req.nic} PRI/{req.priority} REQUESTED BY {req.requester} FROM {req.entering}"]))
        else:
            self.log.error("no control terminal agency in the registry to notify", nic=req.nic)
        conn.execute("UPDATE hit_request SET state = 'expired' WHERE id = ?", (req.id,))

    def _send(self, plan: "Plan", ori: str, text: str) -> None:
        outcome = plan.to_agency(ori, "U", text, PRIORITY_HIT)
        if not outcome.reached:
            # Nobody to tell (no terminal, or every queue full): the journal and the log keep it.
            plan.note("admin", ori=ori, event="HIT CONFIRMATION NOTICE NOT DELIVERED", text=text)
            self.log.error("hit confirmation notice not delivered", ori=ori, full=outcome.full)

    # -- the console ---------------------------------------------------------------------------

    def open_hits(self) -> list[HitRequest]:
        """Requests not closed (open, pending, expired), oldest first."""
        rows = self.store.conn.execute(f"SELECT {HitRequest.COLUMNS} FROM hit_request WHERE state IN {NOT_CLOSED} "
                                       "ORDER BY id")
        return [HitRequest.from_row(r) for r in rows]
