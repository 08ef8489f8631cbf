"""The built-in file handler: the record files of routes/records, indexed, plus
the records entered at run time (PROTOCOL.md 5.1, 5.2).

Inquiries search the (file, record set) index with the inquiry's fields.

Record maintenance (enter, modify, cancel, locate, clear) changes the same
indexes, so an inquiry finds an entry the moment it is accepted, and keeps every
entered or changed record in the store (table ``entered_record``, the record as
JSON) inside the turn's transaction: the link commits it before the reply leaves.
When the handler is built those records are laid over the record files, so
entries, locates and clears survive a restart and a reload.

* NIC: the file letter and nine digits, numbered per letter from 000100000
  upward (the demo record files stay below).  The last number given per letter
  is in the store (``nic_sequence``), so a number is never given twice, also
  after a cancel or a restart; a number a record file already uses is skipped.
* Duplicate entry: a record on file (active or located) in the same file and
  record set, entered by the same ORI, whose ``duplicate`` fields (files.toml)
  that the entry gives all equal the entry's (names and numbers compared
  without case, spaces or hyphens) -> ``OnFile``.  Looked up in a dict keyed by
  (ORI, the fields given, their values), built for a file the first time it
  takes an entry and kept up to date by every change: never a scan per entry.
* The record to change is named by ``NIC`` (its letter must be the file's) and
  must be on file; every identifying field the message gives (the key's ``NAM |
  OCA``-style requirement, else files.toml ``[maintenance] identifiers``) must
  equal the record's, else ``NotOnFile``.  In a modify the first identifying field
  given identifies and any later one is a change.
* Modify, cancel and clear: the entering ORI only (``NotYours``).  Locate: any
  ORI; the record stays on file with status ``located`` and the locate data as
  fields ``DOL``, ``LCA`` and ``LOR`` (the locating ORI).  Clear (``DCL``) and
  cancel (``DOC``) take the record off file: it is kept, never a hit again.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import structlog

from lems.base.errors import Reject
from lems.files.handlers import HandlerContext, HandlerError, NotOnFile, NotYours, OnFile
from lems.wire.message import Message, Record
from lems.files.records import (
    ON_FILE,
    normalize_number,
    record_to_json,
    validate,
)
from lems.files.importer import ImportResult, RecordImportError, sync
from lems.files.index import RecordFiles, criteria, name_key, number_key
from lems.files.phonetic import surname_keys
from lems.store.records import RecordStore


# Run-time entries are numbered from here (records.py: demo records stay below).
FIRST_NUMBER = 100_000
LAST_NUMBER = 999_999_999

# Fields a change message carries that are not record data.
NOT_DATA = frozenset({"NIC"})
# The date field each action writes on the record.
ACTION_DATES = {"cancel": "DOC", "clear": "DCL", "locate": "DOL"}
LOCATING_ORI = "LOR"
LOCATE_FIELDS = frozenset({"DOL", "LCA", LOCATING_ORI})

_SPACES = re.compile(r"\s+")


def normalize(code: str, value: str | None, numbers: tuple[str, ...]) -> str:
    """How two values of a field compare: numbers (the file's, files.toml) without spaces
    or hyphens, names and text upper case with single spaces and none after the comma."""
    if value is None:
        return ""
    if code in numbers:
        return normalize_number(value)
    return _SPACES.sub(" ", value.strip().upper()).replace(", ", ",")


class RecordFileHandler:
    def __init__(self, context: HandlerContext) -> None:
        self.context = context
        self.log = structlog.get_logger("lems.files.filehandler")
        # The last inquiry and its candidates in every file and set (one query per inquiry).
        self._asked: tuple[Any, Any] = (None, None)
        routes = context.home / "routes"
        self.directory = routes / context.options.get("records", "records")
        catalogue = getattr(context.codec, "catalogue", None)
        if catalogue is None:
            raise HandlerError("the record file handler needs the catalogues (context.codec.catalogue)")
        self.catalogue = catalogue
        store = context.store
        self.files = RecordFiles(catalogue, store=RecordStore(store) if store is not None else None)
        # NIC letter -> last number given.
        self._last: dict[str, int] = {}
        self._identifiers: dict[str, tuple[str, ...]] = {}
        self.imported = self._import(routes)

    def _import(self, routes: Any) -> ImportResult:
        """The record files into the store, the ones that changed since the last import only."""
        store = self.context.store
        try:
            result = sync(self.files, self.directory, routes=routes if self.directory.is_relative_to(routes) else None,
                          commit=store.commit if store is not None else None)
        except (OSError, RecordImportError) as exc:
            raise HandlerError(str(exc)) from exc
        if result.files or result.removed:
            self.log.info("record files imported", files=len(result.files), removed=len(result.removed),
                          records=result.records, seconds=round(result.seconds, 3))
        return result

    def refresh(self) -> int:
        """Nothing to reload: the store is the truth, and every search reads it, so a record
        another process entered (``lems ppf load``, ``lems records import``) is found at once.
        Kept for callers that ask (lems.traffic.ppf); returns how many records it took: none."""
        return 0

    # -- inquiry ----------------------------------------------------------------------

    def inquire(self, msg: Message, file: str, record_set: str) -> Sequence[Record]:
        # One QW asks ten indexes (five files, two sets): one query for them all, on the first.
        if self._asked[0] is not msg:
            self._asked = (msg, self.files.search_many(criteria(msg.field_map())))
        return self._asked[1].get(self.files.index(file, record_set))

    # -- maintenance (lems.files.handlers.FileHandler) ------------------------------------------

    def enter(self, msg: Message, file: str, record_set: str) -> Record:
        letter = self._letter(file)
        fields = tuple((code, value) for code, value in msg.fields if value and code not in NOT_DATA)
        draft = Record(file=file, nic=f"{letter}{FIRST_NUMBER:09d}", ori=msg.ori, fields=fields,
                       entered=self._today(), record_set=record_set, caution=self._caution(fields))
        on_file = self._duplicate_of(draft)
        if on_file is not None:
            raise OnFile(on_file)
        validate(draft, self.catalogue)  # before a number is spent: a record that could not be reloaded never goes in
        record = attrs.evolve(draft, nic=self._next_nic(letter))
        self._save(record, "enter", msg.ori)
        self.files.index(file, record_set).add(record)
        return record

    def modify(self, msg: Message, file: str, record_set: str) -> Record:
        record, used = self._target(msg, file, record_set, modify=True)
        self._entering_ori_only(record, msg)
        changes = [(code, value) for code, value in msg.fields
                   if value and code not in NOT_DATA and code not in used]
        fields = _changed(record.fields, changes)
        caution = self._caution(fields) if any(code == "CMC" for code, _ in changes) else record.caution
        return self._replace(record, attrs.evolve(record, fields=fields, caution=caution), "modify", msg.ori)

    def cancel(self, msg: Message, file: str, record_set: str) -> Record:
        return self._take_off(msg, file, record_set, "cancel", "cancelled")

    def clear(self, msg: Message, file: str, record_set: str) -> Record:
        return self._take_off(msg, file, record_set, "clear", "cleared")

    def locate(self, msg: Message, file: str, record_set: str) -> Record:
        record, _ = self._target(msg, file, record_set)
        # Any agency may locate a record; it stays on file until the entering agency clears it.
        # A second locate replaces the first one's data rather than mixing with it.
        kept = tuple(pair for pair in record.fields if pair[0] not in LOCATE_FIELDS)
        data = [(code, msg.get(code) or "") for code in ("DOL", "LCA")] + [(LOCATING_ORI, msg.ori)]
        fields = kept + tuple((code, value) for code, value in data if value)
        return self._replace(record, attrs.evolve(record, fields=fields, status="located"), "locate", msg.ori)

    # -- the steps ---------------------------------------------------------------------

    def _take_off(self, msg: Message, file: str, record_set: str, action: str, status: str) -> Record:
        record, _ = self._target(msg, file, record_set)
        self._entering_ori_only(record, msg)
        date_code = ACTION_DATES[action]
        data = [(date_code, msg.get(date_code) or self._today())]
        fields = _changed(record.fields, data)
        return self._replace(record, attrs.evolve(record, fields=fields, status=status), action, msg.ori)

    def _target(self, msg: Message, file: str, record_set: str, modify: bool = False) -> tuple[Record, set[str]]:
        """The record a change names, and the identifying fields used to name it."""
        nic = (msg.get("NIC") or "").strip().upper()
        if not nic or nic[:1] != self._letter(file):
            raise NotOnFile(f"NIC/{nic} is not a {file} NIC")
        record = self.files.index(file, record_set).by_nic(nic)
        if record is None or record.status not in ON_FILE:
            raise NotOnFile(f"NIC/{nic} not on file in {file}/{record_set}")
        used: set[str] = set()
        for code, value in msg.fields:
            if code not in self._identifiers_of(msg.mke) or code in used:
                continue
            if modify and used:
                break  # in a modify only the first identifying field identifies; later ones are changes
            numbers = self.catalogue.search_rule(file).numbers
            on_file = {normalize(code, v, numbers) for name, v in record.fields if name == code}
            if normalize(code, value, numbers) not in on_file:
                raise NotOnFile(f"{code} does not match NIC/{nic}")
            used.add(code)
        return record, used

    @staticmethod
    def _entering_ori_only(record: Record, msg: Message) -> None:
        if record.ori != msg.ori:
            raise NotYours(record)

    def _replace(self, old: Record, new: Record, action: str, ori: str) -> Record:
        validate(new, self.catalogue)
        self._save(new, action, ori)
        self.files.index(new.file, new.record_set).replace(new)
        return new

    def _identifiers_of(self, mke: str) -> tuple[str, ...]:
        """The fields that name a record in this key: its ``NAM | OCA``-style requirement."""
        found = self._identifiers.get(mke)
        if found is None:
            found = ()
            try:
                spec = self.context.codec.spec(mke)
                for requirement in spec.required:
                    codes = [alt[0] for alt in requirement.alternatives if len(alt) == 1]
                    if len(codes) > 1 and len(codes) == len(requirement.alternatives) and "NIC" not in codes:
                        found += tuple(c for c in codes if c not in found)
            except (AttributeError, Reject):  # no catalogue or key at hand: the usual identifiers
                found = ()
            found = found or self.catalogue.identifiers
            self._identifiers[mke] = found
        return found

    # -- duplicates ---------------------------------------------------------------------

    def _duplicate_fields(self, file: str) -> tuple[str, ...]:
        try:
            return tuple(self.context.codec.file(file).duplicate)
        except (AttributeError, KeyError):
            return ()

    def _duplicate_of(self, draft: Record) -> Record | None:
        """A record on file from the same ORI whose duplicate fields equal every one the entry gives.

        The candidates come from a search key (a number field among the duplicate
        fields, else the name and date of birth), read in the store: never a scan."""
        numbers = self.catalogue.search_rule(draft.file).numbers
        given = [(code, normalize(code, draft.get(code), numbers)) for code in self._duplicate_fields(draft.file)]
        given = [(code, value) for code, value in given if value]
        if not given:
            return None
        index = self.files.index(draft.file, draft.record_set)
        if index.home is None:
            return None
        keys = [number_key(code, normalize_number(draft.get(code) or "")) for code, _ in given if code in numbers]
        codes = {code for code, _ in given}
        if not keys and {"NAM", "DOB"} <= codes:
            dob = draft.get("DOB") or ""
            keys = [name_key(key, dob) for key in surname_keys(draft.get("NAM") or "")]
        if keys:
            rows = [row for _, row in self.files.records.candidates(keys[:1] if keys[0][0] != "~" else keys,
                                                                    (index.home,))]
        else:  # no indexed field among them: the ORI's own records of the file
            rows = self.files.records.by_ori(index.home, draft.ori)
        found = []
        for row in rows:
            if row[4] != draft.ori or row[3] not in ON_FILE:
                continue
            record = index._record(row)
            if all(normalize(code, record.get(code), numbers) == value for code, value in given):
                found.append(record)
        return min(found, key=lambda r: r.nic) if found else None

    # -- numbers, dates, cautions -------------------------------------------------------

    def _letter(self, file: str) -> str:
        spec = self.catalogue.files.get(file)
        letter = spec.letter if spec is not None else None
        if not letter:
            raise HandlerError(f"file {file!r} has no NIC letter and takes no entries")
        return letter

    def _next_nic(self, letter: str) -> str:
        number = max(self._last.get(letter, FIRST_NUMBER - 1), FIRST_NUMBER - 1)
        store = self.context.store
        if store is not None:  # the store's counter wins: another instance of this handler may have moved it
            row = store.write().execute("SELECT last FROM nic_sequence WHERE letter = ?", (letter,)).fetchone()
            number = max(number, row[0] if row else 0)
        while True:
            number += 1
            if number > LAST_NUMBER:
                raise HandlerError(f"NIC numbers for letter {letter} are used up")
            nic = f"{letter}{number:09d}"
            if self.files.find(nic) is None:  # a number a record file already uses is skipped
                break
        self._last[letter] = number
        if store is not None:
            store.write().execute("INSERT INTO nic_sequence (letter, last) VALUES (?, ?) "
                                  "ON CONFLICT(letter) DO UPDATE SET last = excluded.last", (letter, number))
        return nic

    def _now(self) -> dt.datetime:
        clock = self.context.clock
        return clock.now() if clock is not None else dt.datetime.now(dt.UTC)

    def _today(self) -> str:
        """The entry date in the switch's time zone (``Switch.today``)."""
        now = self._now()
        zone = getattr(self.context.settings, "timezone", None)
        return (now.astimezone(zone) if zone is not None else now).strftime("%Y%m%d")

    def _caution(self, fields: Sequence[tuple[str, str]]) -> str | None:
        """The caution line of the record's first CMC code the catalogue words."""
        try:
            cautions = self.context.codec.catalogue.cautions
        except AttributeError:
            return None
        for code, value in fields:
            if code == "CMC" and value in cautions:
                return cautions[value]
        return None

    # -- the store --------------------------------------------------------------------

    def _save(self, record: Record, action: str, ori: str) -> None:
        store = self.context.store
        if store is None:
            return
        store.write().execute(
            "INSERT INTO entered_record (nic, file, record_set, status, record, action, ori, changed) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(nic) DO UPDATE SET status = excluded.status, "
            "record = excluded.record, action = excluded.action, ori = excluded.ori, changed = excluded.changed",
            (record.nic, record.file, record.record_set, record.status,
             json.dumps(record_to_json(record), separators=(",", ":")), action, ori,
             self._now().astimezone(dt.UTC).isoformat()))


def _changed(fields: Sequence[tuple[str, str]], changes: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``fields`` with every code in ``changes`` given its new value(s): in place of the
    first old occurrence, or at the end when the record did not have the field."""
    new: dict[str, list[str]] = {}
    for code, value in changes:
        new.setdefault(code, []).append(value)
    out: list[tuple[str, str]] = []
    placed: set[str] = set()
    for code, value in fields:
        if code not in new:
            out.append((code, value))
        elif code not in placed:
            out += [(code, v) for v in new[code]]
            placed.add(code)
    for code, values in new.items():
        if code not in placed:
            out += [(code, v) for v in values]
    return tuple(out)
