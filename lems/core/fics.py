"""Firearms instant checks for licensed dealers (PROTOCOL.md 10, ORS 166.412).

The check pipeline and its decision rules, without any I/O of its own: the
dealer web interface (lems.net.dealer_web) hands it a parsed JSON body and a
dealer, and the console (lems.admin.fics_console) its examiners' decisions.

A check runs as the switch itself (the control terminal agency's ORI, ``PUR/F``,
the dealer as ``ATN``) through the switch's own route table and file handlers,
never a copy of the data:

* a person search of every person file in both record sets, as ``QW``;
* the criminal history index, as ``QH`` (written to the dissemination log);
* the prohibited persons file, as ``QPP``;
* a stolen-gun search of every serial, as ``QG``.

Outcome, in this order: a PPF prohibition (a record without ``RLD``, relief
granted) or a stolen firearm is ``denied``, and the agency that entered the gun
record gets a ``U`` notice naming the dealer and the transaction (queued when
none of its terminals is connected); a wanted person, protection order or
criminal history hit is ``pending`` for an examiner; otherwise ``approved``
with an approval number unique across all checks.  A search that fails makes
the check ``pending`` too: no check is approved on a search that did not run.
What was found is kept for the examiners; the dealer only ever sees the status.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any, Iterable, Optional

import attrs
import structlog

from lems.base.clock import stamp
from lems.base.dealers import Dealer, Dealers
from lems.base.events import PRIORITY_HIT
from lems.base.registry import RegistryError
from lems.core.schedule import EveryDays
from lems.wire.message import Message, Record

log = structlog.get_logger("lems.core.fics")

STATUSES = ("approved", "denied", "pending")
FIREARM_TYPES = ("handgun", "long gun", "other")
SEXES = ("M", "F", "X")
RACES = ("W", "B", "I", "A", "U")  # NCIC race codes
PERSON_PENDING_FILES = frozenset({"wanted", "protection"})  # QW hits that hold a check for an examiner
MAX_FIREARMS = 20
TXN = re.compile(r"^F\d{4}-\d{6}$")

_NAME_PART = re.compile(r"^[A-Z][A-Z '\-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STATE = re.compile(r"^[A-Z]{2}$")
_ID_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9 \-]{0,24}$")
_SERIAL = re.compile(r"^[A-Z0-9][A-Z0-9 \-]{0,19}$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")

BUYER_FIELDS = ("last_name", "first_name", "middle_name", "dob", "sex", "race", "id_type", "id_number", "id_state")
FIREARM_FIELDS = ("type", "make", "model", "caliber", "serial")
TOP_FIELDS = ("dealer_reference", "buyer", "firearms")


class FicsError(Exception):
    """An examiner's or administrator's request that cannot be done; the text says why."""


class TooMany(Exception):
    """A dealer over its request rate; ``retry_after`` seconds until the next request is accepted."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class SearchFailed(Exception):
    """A search of the pipeline did not run (no route, or its handler failed)."""


@attrs.frozen
class FieldError:
    field: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@attrs.frozen
class Buyer:
    last_name: str
    first_name: str
    middle_name: str
    dob: dt.date
    sex: str
    race: str
    id_type: str
    id_number: str
    id_state: str

    @property
    def nam(self) -> str:
        """``LAST, FIRST MIDDLE`` as the files hold names, at most 30 characters."""
        name = f"{self.last_name}, {self.first_name}" + (f" {self.middle_name}" if self.middle_name else "")
        return name[:30].rstrip()

    @property
    def dob_ncic(self) -> str:
        return self.dob.strftime("%Y%m%d")


@attrs.frozen
class Firearm:
    type: str
    make: str
    model: str
    caliber: str
    serial: str


@attrs.frozen
class CheckRequest:
    dealer_reference: str
    buyer: Buyer
    firearms: tuple[Firearm, ...]


# -- validation (422) ----------------------------------------------------------------------


def _text(obj: dict, key: str, where: str, errors: list[FieldError], *, required: bool = True,
          limit: int = 30, upper: bool = True, empty_ok: bool = False) -> str:
    value = obj.get(key)
    path = f"{where}{key}"
    if value is None:
        if required:
            errors.append(FieldError(path, "is required"))
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(path, "must be a string"))
        return ""
    value = " ".join(value.split())
    if upper:
        value = value.upper()
    if required and not value and not empty_ok:
        errors.append(FieldError(path, "must not be empty"))
    elif len(value) > limit:
        errors.append(FieldError(path, f"must be at most {limit} characters"))
    elif not _PRINTABLE.match(value):
        errors.append(FieldError(path, "must be printable ASCII characters only"))
    return value


def _unknown(obj: dict, known: Iterable[str], where: str, errors: list[FieldError]) -> None:
    for key in obj:
        if key not in known:
            errors.append(FieldError(f"{where}{key or '(empty name)'}", "is not a field of this interface"))


def validate(body: Any, today: dt.date) -> tuple[Optional[CheckRequest], list[FieldError]]:
    """A check request from a decoded JSON body, or every field that is missing or wrong."""
    errors: list[FieldError] = []
    if not isinstance(body, dict):
        return None, [FieldError("(body)", "must be a JSON object")]
    _unknown(body, TOP_FIELDS, "", errors)
    reference = _text(body, "dealer_reference", "", errors, limit=64, upper=False, empty_ok=True)

    raw_buyer = body.get("buyer")
    buyer = None
    if raw_buyer is None:
        errors.append(FieldError("buyer", "is required"))
    elif not isinstance(raw_buyer, dict):
        errors.append(FieldError("buyer", "must be an object"))
    else:
        buyer = _buyer(raw_buyer, today, errors)

    raw_guns = body.get("firearms")
    guns: list[Firearm] = []
    if raw_guns is None:
        errors.append(FieldError("firearms", "is required"))
    elif not isinstance(raw_guns, list):
        errors.append(FieldError("firearms", "must be a list"))
    elif not raw_guns:
        errors.append(FieldError("firearms", "must list at least one firearm"))
    elif len(raw_guns) > MAX_FIREARMS:
        errors.append(FieldError("firearms", f"at most {MAX_FIREARMS} firearms in one check"))
    else:
        for i, gun in enumerate(raw_guns):
            where = f"firearms[{i}]."
            if not isinstance(gun, dict):
                errors.append(FieldError(f"firearms[{i}]", "must be an object"))
                continue
            _unknown(gun, FIREARM_FIELDS, where, errors)
            kind = gun.get("type")
            if kind is None:
                errors.append(FieldError(f"{where}type", "is required"))
            elif not isinstance(kind, str) or kind.strip().lower() not in FIREARM_TYPES:
                errors.append(FieldError(f"{where}type", "must be one of: " + ", ".join(FIREARM_TYPES)))
            make = _text(gun, "make", where, errors)
            model = _text(gun, "model", where, errors)
            caliber = _text(gun, "caliber", where, errors, limit=20)
            serial = _text(gun, "serial", where, errors, limit=20)
            if serial and len(serial) <= 20 and not _SERIAL.match(serial):
                errors.append(FieldError(f"{where}serial", "letters, digits, spaces and hyphens only"))
            if isinstance(kind, str):
                guns.append(Firearm(kind.strip().lower(), make, model, caliber, serial))
    if errors or buyer is None:
        return None, errors
    return CheckRequest(reference, buyer, tuple(guns)), []


def _buyer(raw: dict, today: dt.date, errors: list[FieldError]) -> Optional[Buyer]:
    w = "buyer."
    _unknown(raw, BUYER_FIELDS, w, errors)
    names = {}
    for key, required in (("last_name", True), ("first_name", True), ("middle_name", False)):
        value = _text(raw, key, w, errors, required=required, limit=28)
        if value and len(value) <= 28 and not _NAME_PART.match(value):
            errors.append(FieldError(f"{w}{key}", "letters, spaces, hyphens and apostrophes only"))
        names[key] = value
    dob = None
    text = raw.get("dob")
    if text is None:
        errors.append(FieldError(f"{w}dob", "is required"))
    elif not isinstance(text, str) or not _DATE.match(text):
        errors.append(FieldError(f"{w}dob", "must be a date CCYY-MM-DD"))
    else:
        try:
            dob = dt.date.fromisoformat(text)
        except ValueError:
            errors.append(FieldError(f"{w}dob", "is not a real date"))
        else:
            if dob > today:
                errors.append(FieldError(f"{w}dob", "is in the future"))
                dob = None
            elif dob.year < today.year - 120:
                errors.append(FieldError(f"{w}dob", "is more than 120 years ago"))
                dob = None
    sex = raw.get("sex")
    if sex is None:
        errors.append(FieldError(f"{w}sex", "is required"))
    elif not isinstance(sex, str) or sex.strip().upper() not in SEXES:
        errors.append(FieldError(f"{w}sex", "must be one of: M, F, X"))
    race = raw.get("race")
    if race is not None and (not isinstance(race, str) or race.strip().upper() not in RACES + ("",)):
        errors.append(FieldError(f"{w}race", "must be one of the NCIC race codes: " + ", ".join(RACES)))
    id_type = _text(raw, "id_type", w, errors, limit=20)
    id_number = _text(raw, "id_number", w, errors, limit=25)
    if id_number and len(id_number) <= 25 and not _ID_NUMBER.match(id_number):
        errors.append(FieldError(f"{w}id_number", "letters, digits, spaces and hyphens only"))
    id_state = _text(raw, "id_state", w, errors, limit=2)
    if id_state and len(id_state) <= 2 and not _STATE.match(id_state):
        errors.append(FieldError(f"{w}id_state", "must be a two-letter state code"))
    if errors or dob is None:
        return None
    return Buyer(names["last_name"], names["first_name"], names["middle_name"], dob, sex.strip().upper(),
                 (race or "").strip().upper(), id_type, id_number, id_state)


# -- the rate limit (429) ---------------------------------------------------------------------


class Buckets:
    """A token bucket per dealer on the switch's monotonic clock."""

    def __init__(self, clock: Any, rate: float, burst: int) -> None:
        self.clock, self.rate, self.burst = clock, rate, burst
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, dealer_id: str) -> None:
        if self.rate <= 0:
            return
        now = self.clock.monotonic()
        tokens, at = self.state.get(dealer_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self.state[dealer_id] = (tokens, now)
            raise TooMany(max(1, math.ceil((1.0 - tokens) / self.rate)))
        self.state[dealer_id] = (tokens - 1.0, now)


# -- the checks ----------------------------------------------------------------------------


def iso(moment: Optional[dt.datetime]) -> Optional[str]:
    """UTC ISO 8601 to the second, ``Z``."""
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse(text: Optional[str]) -> Optional[dt.datetime]:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


COLUMNS = ("txn", "dealer", "dealer_reference", "status", "approval_number", "received", "decided", "decided_by",
           "estimated_completion", "firearms", "buyer", "guns", "reasons")


@attrs.frozen
class Check:
    txn: str
    dealer: str
    dealer_reference: str
    status: str
    approval_number: Optional[str]
    received: str
    decided: Optional[str]
    decided_by: Optional[str]
    estimated_completion: Optional[str]
    firearms: int
    buyer: dict
    guns: list
    reasons: list

    @classmethod
    def from_row(cls, row: tuple) -> "Check":
        values = dict(zip(COLUMNS, row))
        for key in ("buyer", "guns", "reasons"):
            values[key] = json.loads(values[key])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """What the dealer sees (PROTOCOL.md 10): never what caused a denial or a delay."""
        return {"transaction": self.txn, "status": self.status, "approval_number": self.approval_number,
                "estimated_completion": self.estimated_completion, "received": self.received,
                "dealer_reference": self.dealer_reference, "firearms": self.firearms}

    @property
    def buyer_name(self) -> str:
        b = self.buyer
        return f"{b.get('last_name', '')}, {b.get('first_name', '')} {b.get('middle_name') or ''}".strip()


class Fics:
    """The firearms instant check unit of a running switch (``switch.fics``)."""

    def __init__(self, switch: Any) -> None:
        self.switch = switch
        self.settings = switch.settings.dealer
        self.clock = switch.clock
        self.store = switch.store
        self.directory = switch.registry.directory
        self._dealers = Dealers.load(self.directory)
        self._dealers_seen = self.store.registry_change_seq()
        self.buckets = Buckets(self.clock, self.settings.requests_per_second, self.settings.request_burst)
        switch.schedule.add("fics estimates", EveryDays(1 / 1440), self.estimate)
        switch.schedule.add("fics retention", EveryDays(1), self.purge)

    # -- dealers ------------------------------------------------------------------------

    @property
    def dealers(self) -> Dealers:
        """The dealer registry, read again when another process announced a registry change."""
        latest = self.store.registry_change_seq()
        if latest > self._dealers_seen:
            self._dealers_seen = latest
            try:
                self._dealers = Dealers.load(self.directory)
            except (RegistryError, OSError) as exc:
                log.error("dealer registry change not taken, running one kept", error=str(exc))
        return self._dealers

    def adopt_dealers(self, dealers: Dealers) -> None:
        """Take a dealer registry read by the console's ``reload``."""
        self._dealers = dealers
        self._dealers_seen = self.store.registry_change_seq()

    def authenticate(self, key: str) -> Optional[Dealer]:
        return self.dealers.authenticate(key)

    def set_dealer_status(self, dealer_id: str, status: str, who: str) -> tuple[Dealer, str]:
        """suspend / revoke / reinstate: in force for the dealer's next request; (dealer, status before)."""
        dealers = self.dealers
        dealer = dealers.get(dealer_id)
        if dealer is None:
            raise FicsError(f"NO DEALER {dealer_id.upper()}")
        before = dealer.status
        if before == status:
            raise FicsError(f"DEALER {dealer.id} IS ALREADY {status.upper()}")
        new = attrs.evolve(dealer, status=status)
        try:
            self._dealers = dealers.with_dealer(new)
        except (RegistryError, OSError) as exc:
            raise FicsError(f"DEALER REGISTRY NOT WRITTEN: {exc}") from None
        now = stamp(self.clock.now())
        self._dealers_seen = self.store.announce_registry_change(f"DEALER {dealer.id} {status.upper()}", now)
        self.switch.audit("admin", None, event=f"FICS DEALER {status.upper()}", operator=who.upper(),
                          text=f"DEALER {dealer.id} {dealer.name} {before.upper()} -> {status.upper()}")
        return new, before

    def take(self, dealer: Dealer) -> None:
        """One request of the dealer's rate (TooMany when it is over)."""
        self.buckets.take(dealer.id)

    # -- numbering ----------------------------------------------------------------------

    def _next(self, name: str) -> int:
        conn = self.store.write()
        conn.execute("INSERT INTO fics_counter (name, last) VALUES (?, 1) "
                     "ON CONFLICT(name) DO UPDATE SET last = last + 1", (name,))
        return conn.execute("SELECT last FROM fics_counter WHERE name = ?", (name,)).fetchone()[0]

    def _new_txn(self, now: dt.datetime) -> str:
        year = now.astimezone(self.switch.settings.timezone).year
        n = self._next(f"txn {year}")
        if n > 999_999:
            raise FicsError(f"TRANSACTION NUMBERS FOR {year} ARE USED UP")
        return f"F{year}-{n:06d}"

    def _new_approval(self) -> str:
        return f"A{self._next('approval'):09d}"

    # -- the searches -------------------------------------------------------------------

    def _switch_ori(self) -> str:
        registry = self.switch.registry
        for agency in registry.agencies.values():
            if agency.control:
                return agency.ori
        return next(iter(registry.agencies), "OR0000000")

    def _search(self, mke: str, fields: list[tuple[str, str]]) -> list[Record]:
        router = self.switch.router
        route = router.table.inquiries.get(mke)
        if route is None:
            raise SearchFailed(f"NO ROUTE FOR {mke}")
        handler = router.handlers[route.handler]
        ori = self._switch_ori()
        msg = Message(mke, ori, tuple((c, v) for c, v in fields if v),
                      raw=".".join([mke, ori, *(f"{c}/{v}" for c, v in fields if v)]))
        hits: list[Record] = []
        for record_set in route.sets:
            for file in route.files:
                try:
                    hits += router.routing.timed(handler.inquire, msg, file, record_set)
                except Exception as exc:  # noqa: BLE001 - a failed search holds the check, never approves it
                    log.error("fics search failed", mke=mke, file=file, record_set=record_set, error=repr(exc))
                    raise SearchFailed(f"{mke} {record_set} {file} FAILED") from exc
        return hits

    def run(self, dealer: Dealer, request: CheckRequest) -> Check:
        """Run one check and keep it; the caller commits."""
        now = self.clock.now()
        txn = self._new_txn(now)
        buyer = request.buyer
        atn = dealer.id
        seq = self.switch.audit("admin", None, event="FICS CHECK", operator=dealer.id, mke="FICS",
                                text=(f"TRANSACTION/{txn} DEALER/{dealer.id} FFL/{dealer.ffl} NAM/{buyer.nam} "
                                      f"DOB/{buyer.dob_ncic} FIREARMS/{len(request.firearms)} "
                                      f"REF/{request.dealer_reference}")[:1000])
        person = [("NAM", buyer.nam), ("DOB", buyer.dob_ncic), ("SEX", buyer.sex if buyer.sex in "MF" else ""),
                  ("RAC", buyer.race)]
        reasons: list[dict[str, str]] = []
        failed: list[str] = []
        prohibited = stolen = held = False
        stolen_records: list[tuple[Firearm, Record]] = []

        def found(kind: str, record: Record, note: str = "") -> None:
            reasons.append({"search": kind, "file": record.file, "set": record.record_set, "nic": record.nic,
                            "ori": record.ori, **({"note": note} if note else {})})

        try:
            for record in self._search("QPP", [*person, ("PUR", "F"), ("ATN", atn)]):
                if record.get("RLD"):
                    found("QPP", record, f"RELIEF GRANTED {record.get('RLD')} - NOT A PROHIBITION")
                    continue
                prohibited = True
                found("QPP", record, "PROHIBITED")
        except SearchFailed as exc:
            failed.append(str(exc))
        for gun in request.firearms:
            try:
                for record in self._search("QG", [("SER", gun.serial), ("PUR", "F"), ("ATN", atn)]):
                    stolen = True
                    stolen_records.append((gun, record))
                    found("QG", record, f"STOLEN GUN SER/{gun.serial}")
            except SearchFailed as exc:
                failed.append(str(exc))
        try:
            for record in self._search("QW", [*person, ("PUR", "F"), ("ATN", atn)]):
                hold = record.file in PERSON_PENDING_FILES
                held = held or hold
                found("QW", record, "HOLD" if hold else "NOT A DISQUALIFYING FILE")
        except SearchFailed as exc:
            failed.append(str(exc))
        # The criminal history part is disseminated: written to the dissemination log with PUR/F.
        self.switch.trail.disseminate(operator=dealer.id, ori=self._switch_ori(), terminal=None, mke="QH",
                                      atn=atn, pur="F", subject=buyer.nam, journal_seq=seq)
        try:
            for record in self._search("QH", [*person, ("PUR", "F"), ("ATN", atn)]):
                held = True
                found("QH", record, "CRIMINAL HISTORY")
        except SearchFailed as exc:
            failed.append(str(exc))
        for what in failed:
            reasons.append({"search": what.split()[0], "note": f"SEARCH FAILED: {what}"})

        if prohibited or stolen:
            status = "denied"
        elif held or failed:
            status = "pending"
        else:
            status = "approved"
        approval = self._new_approval() if status == "approved" else None
        check = Check(txn, dealer.id, request.dealer_reference, status, approval, iso(now),
                      iso(now) if status != "pending" else None, "SWITCH" if status != "pending" else None,
                      None, len(request.firearms), _buyer_json(buyer), [attrs.asdict(g) for g in request.firearms],
                      reasons)
        self._insert(check)
        self.switch.audit("admin", None, event=f"FICS {status.upper()}", operator=dealer.id, mke="FICS",
                          outcome=status.upper(),
                          text=(f"TRANSACTION/{txn} {status.upper()}" + (f" APPROVAL/{approval}" if approval else "")
                                + "".join(f" {r['search']}:{r.get('nic', '-')}" for r in reasons))[:1000])
        if stolen_records:
            self._stolen_notices(dealer, check, buyer, stolen_records)
        return check

    def _stolen_notices(self, dealer: Dealer, check: Check, buyer: Buyer,
                        found: list[tuple[Firearm, Record]]) -> None:
        """The entering agency of each stolen-gun record hit gets a U notice (queued when offline)."""
        switch = self.switch
        by_ori: dict[str, list[tuple[Firearm, Record]]] = {}
        for gun, record in found:
            by_ori.setdefault(record.ori, []).append((gun, record))
        plan = switch.router.delivery.plan(switch.registry, switch.hub)
        for ori, items in by_ori.items():
            lines = ["FICS STOLEN FIREARM NOTICE",
                     f"A FIREARMS INSTANT CHECK NAMED A GUN ENTERED BY {ori} AS STOLEN",
                     f"TRANSACTION/{check.txn} STATUS/DENIED",
                     f"DEALER/{dealer.id} {dealer.name}",
                     f"FFL/{dealer.ffl}",
                     f"BUYER NAM/{buyer.nam} DOB/{buyer.dob_ncic}"]
            for gun, record in items:
                lines.append(f"MKE/STOLEN GUN SER/{gun.serial} NIC/{record.nic} OCA/{record.get('OCA', '')}".rstrip())
            lines.append("CONTACT THE FIREARMS INSTANT CHECK UNIT OF THE STATE CONTROL TERMINAL AGENCY")
            try:
                outcome = plan.to_agency(ori, "U", "\n".join(lines), PRIORITY_HIT)
            except Exception as exc:  # noqa: BLE001 - the denial stands; a notice that cannot go is logged
                log.error("fics stolen gun notice not sent", ori=ori, error=repr(exc))
                continue
            plan.note("admin", event="FICS STOLEN GUN NOTICE", ori=ori, mke="FICS",
                      text=(f"TRANSACTION/{check.txn} TO {ori}: DELIVERED {' '.join(outcome.delivered) or '-'} "
                            f"QUEUED {' '.join(outcome.queued) or '-'}"))
        switch.deliver(plan.notices)

    def _insert(self, check: Check) -> None:
        values = [getattr(check, c) for c in COLUMNS]
        for i, c in enumerate(COLUMNS):
            if c in ("buyer", "guns", "reasons"):
                values[i] = json.dumps(values[i], separators=(",", ":"))
        self.store.write().execute(f"INSERT INTO fics_check ({', '.join(COLUMNS)}) VALUES "
                                   f"({', '.join('?' for _ in COLUMNS)})", values)

    # -- reading ------------------------------------------------------------------------

    def get(self, txn: str) -> Optional[Check]:
        row = self.store.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM fics_check WHERE txn = ?",
                                      (txn.strip().upper(),)).fetchone()
        return Check.from_row(row) if row else None

    def of_dealer(self, dealer_id: str, status: Optional[str] = None, limit: int = 100) -> list[Check]:
        """A dealer's checks, newest first."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM fics_check WHERE dealer = ?"
        args: list[Any] = [dealer_id]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY received DESC, txn DESC LIMIT ?"
        args.append(limit)
        return [Check.from_row(r) for r in self.store.conn.execute(sql, args)]

    def pending(self) -> list[Check]:
        rows = self.store.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM fics_check WHERE status = 'pending' "
                                       "ORDER BY received, txn")
        return [Check.from_row(r) for r in rows]

    # -- examiners ------------------------------------------------------------------------

    def decide(self, txn: str, status: str, who: str) -> Check:
        """An examiner's approve or deny of a pending check (the console's ``fics approve|deny``)."""
        check = self.get(txn)
        if check is None:
            raise FicsError(f"NO CHECK {txn.upper()}")
        if check.status != "pending":
            raise FicsError(f"CHECK {check.txn} IS NOT PENDING: IT WAS {check.status.upper()} "
                            f"{check.decided or ''} BY {check.decided_by or 'SWITCH'}".rstrip())
        now = iso(self.clock.now())
        approval = self._new_approval() if status == "approved" else None
        self.store.write().execute(
            "UPDATE fics_check SET status = ?, approval_number = ?, decided = ?, decided_by = ? WHERE txn = ?",
            (status, approval, now, who.upper(), check.txn))
        self.switch.audit("admin", None, event=f"FICS EXAMINER {status.upper()}", operator=who.upper(), mke="FICS",
                          outcome=status.upper(),
                          text=f"TRANSACTION/{check.txn} DEALER/{check.dealer} {status.upper()}"
                               + (f" APPROVAL/{approval}" if approval else ""))
        return self.get(check.txn)  # type: ignore[return-value]

    # -- timers -------------------------------------------------------------------------

    def estimate(self, now: Optional[dt.datetime] = None) -> int:
        """Pending checks past [dealer] pending_minutes get an estimated_completion; how many did."""
        now = now or self.clock.now()
        cutoff = iso(now - dt.timedelta(minutes=self.settings.pending_minutes))
        rows = self.store.conn.execute("SELECT txn, received FROM fics_check WHERE status = 'pending' "
                                       "AND estimated_completion IS NULL AND received <= ?", (cutoff,)).fetchall()
        if not rows:
            return 0
        conn = self.store.write()
        for txn, received in rows:
            due = _parse(received) + dt.timedelta(hours=self.settings.estimate_hours)
            if due <= now:
                due = now + dt.timedelta(hours=self.settings.estimate_hours)
            conn.execute("UPDATE fics_check SET estimated_completion = ? WHERE txn = ?", (iso(due), txn))
            self.switch.audit("admin", None, event="FICS ESTIMATED COMPLETION", mke="FICS",
                              text=f"TRANSACTION/{txn} PENDING SINCE {received}; ESTIMATED COMPLETION {iso(due)}")
        return len(rows)

    def purge(self, now: Optional[dt.datetime] = None) -> int:
        """Checks received more than [dealer] retention_days ago are removed; how many were."""
        now = now or self.clock.now()
        cutoff = iso(now - dt.timedelta(days=self.settings.retention_days))
        conn = self.store.write()
        count = conn.execute("DELETE FROM fics_check WHERE received < ?", (cutoff,)).rowcount
        if count:
            self.switch.audit("admin", None, event="FICS RETENTION", mke="FICS",
                              text=f"{count} CHECK(S) RECEIVED BEFORE {cutoff} PURGED "
                                   f"([dealer] retention_days = {self.settings.retention_days})")
        return count


def _buyer_json(buyer: Buyer) -> dict[str, str]:
    out = attrs.asdict(buyer)
    out["dob"] = buyer.dob.isoformat()
    return out
