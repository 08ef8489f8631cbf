"""The search indexes the file handlers serve (PROTOCOL.md 5.2 search rules).

Searches go through dict indexes only (DESIGN.md: inquiry cost must barely grow
from 10 thousand to a million records); ``RecordIndex.scan`` is the slow
reference the tests hold the indexes to.  ``RecordFiles`` holds the indexes of
every file and record set and finds a record by NIC.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

import attrs

from lems.files.phonetic import surname_keys
from lems.files.records import ON_FILE, STATE_SETS, _DATE, _values, load_record_files, normalize_number
from lems.wire.catalogue import Catalogue
from lems.wire.message import Record


# --- name search rules -------------------------------------------------------


@attrs.frozen
class NameRule:
    """How a file matches a name and date of birth.

    ``years`` is the birth-year window always searched; ``edb_years`` the window
    when the inquiry has ``EDB/1``.  Month and day always match exactly: this is
    our reading of the NCIC expanded date of birth search (same month and day, a
    year either side).  ``strict`` is the III rule: sex must be equal, and race
    too unless either side is U; otherwise the NCIC hot-file race table applies.
    """

    years: int = 0
    edb_years: int = 1
    strict: bool = False


NCIC_RULE = NameRule()
# III searches three years either side, with an absolute sex/race match.
HISTORY_RULE = NameRule(years=3, edb_years=3, strict=True)
NAME_RULES: dict[str, NameRule] = {"history": HISTORY_RULE}

# NCIC hot files: an inquiry race of W does not find B records and vice versa;
# A, I and U find every race.  A record of race U is found by any inquiry.
_RACE_EXCLUDES = {"W": frozenset({"B"}), "B": frozenset({"W"})}


def _race_ok(rule: NameRule, asked: Optional[str], record_races: list[str]) -> bool:
    if not asked or not record_races:
        return True
    if rule.strict:
        return asked == "U" or any(r in (asked, "U") for r in record_races)
    excluded = _RACE_EXCLUDES.get(asked, frozenset())
    return any(r not in excluded for r in record_races)


def _sex_ok(rule: NameRule, asked: Optional[str], record_sexes: list[str]) -> bool:
    # M and F exclude each other; U (or a record without sex) matches either,
    # except under the III rule, where sex must be equal.
    if asked not in ("M", "F") or not record_sexes:
        return True
    return any(s == asked or (s == "U" and not rule.strict) for s in record_sexes)


@functools.lru_cache(maxsize=4096)
def _birth_dates(dob: str, window: int) -> tuple[str, ...]:
    if not _DATE.match(dob):
        raise ValueError(f"DOB {dob!r} must be CCYYMMDD")
    year, month_day = int(dob[:4]), dob[4:]
    return tuple(f"{year + offset:04d}{month_day}" for offset in range(-window, window + 1))


def _names(record: Record) -> list[str]:
    return _values(record, "NAM") + _values(record, "AKA")


# --- the index ---------------------------------------------------------------


def _bucket_add(table: dict[Any, Any], key: Any, nic: str) -> None:
    found = table.get(key)
    if found is None:
        table[key] = nic
    elif type(found) is str:
        if found != nic:
            table[key] = {found, nic}
    else:
        found.add(nic)


def _bucket_remove(table: dict[Any, Any], key: Any, nic: str) -> None:
    found = table.get(key)
    if found is None:
        return
    if type(found) is str:
        if found == nic:
            del table[key]
        return
    found.discard(nic)
    if len(found) == 1:
        table[key] = next(iter(found))
    elif not found:
        del table[key]


def _bucket(table: dict[Any, Any], key: Any) -> Iterable[str]:
    found = table.get(key)
    if found is None:
        return ()
    return (found,) if type(found) is str else found


class RecordIndex:
    """The records of one file in one record set, indexed for inquiry.

    Indexes (all dicts, never scanned): NIC; ``(MFC, normalized value)`` for each
    number field; ``(surname phonetic key, DOB)`` for every name (NAM and AKA)
    with every date of birth on the record.  The name index is keyed on the whole
    date rather than the birth year because month and day must match under every
    rule, so the buckets are ~365 times smaller; an EDB search reads one bucket
    per year of the window.

    ``candidates_examined`` counts the records looked at by ``search`` since the
    index was made: it is how tests show a search reads only its buckets.

    The number fields, their narrowing and the file's letter are read from the
    catalogue once, here, never per lookup.
    """

    def __init__(self, file: str, record_set: str, catalogue: Catalogue) -> None:
        self.file = file
        self.record_set = record_set
        rule = catalogue.search_rule(file)
        self.number_fields = rule.numbers
        self._number_set = frozenset(self.number_fields)
        self.narrowing = dict(rule.narrowing)
        # None for a file the catalogue does not know: ``RecordFiles.find`` looks in it for any NIC.
        self.letter = catalogue.file_letters.get(file)
        self.rule = NAME_RULES.get(file, NCIC_RULE)
        self.candidates_examined = 0
        self._records: dict[str, Record] = {}
        self._order: dict[str, int] = {}
        self._next = 0
        # Buckets hold one NIC as a plain string and only become sets when shared: most
        # number keys are unique, and an empty set alone costs 216 bytes.
        self._numbers: dict[tuple[str, str], str | set[str]] = {}
        self._names: dict[tuple[str, str], str | set[str]] = {}
        self._keys: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._records.values()))

    def __repr__(self) -> str:
        return f"<RecordIndex {self.file}/{self.record_set} {len(self)} records>"

    # -- maintenance --

    def add(self, record: Record) -> None:
        """Put a new record on file; ValueError if its NIC is taken or it belongs elsewhere."""
        self._check_home(record)
        if record.nic in self._records:
            raise ValueError(f"nic {record.nic} is already on file in {self.file}/{self.record_set}")
        self._order[record.nic] = self._next
        self._next += 1
        self._insert(record)

    def replace(self, record: Record) -> Record:
        """Swap in a new version of a record (modify, locate, clear); returns the old one."""
        old = self._records.get(record.nic)
        if old is None:
            raise KeyError(f"nic {record.nic} is not on file in {self.file}/{self.record_set}")
        self._check_home(record)
        self._unindex(record.nic)
        self._insert(record)
        return old

    def remove(self, nic: str) -> Record:
        """Take a record off file entirely; returns it (KeyError if unknown)."""
        if nic not in self._records:
            raise KeyError(f"nic {nic} is not on file in {self.file}/{self.record_set}")
        self._unindex(nic)
        del self._order[nic]
        return self._records.pop(nic)

    def by_nic(self, nic: str) -> Optional[Record]:
        """The record with this NIC whatever its status, or None."""
        return self._records.get(nic.strip().upper())

    def _check_home(self, record: Record) -> None:
        if record.file != self.file or record.record_set != self.record_set:
            raise ValueError(f"record {record.nic} is {record.file}/{record.record_set}, "
                             f"this index holds {self.file}/{self.record_set}")

    def _insert(self, record: Record) -> None:
        self._records[record.nic] = record
        number_keys = [(code, normalize_number(value)) for code, value in record.fields
                       if code in self.number_fields and normalize_number(value)]
        dobs = [value for value in _values(record, "DOB") if _DATE.match(value)]
        name_keys = [(key, dob) for name in _names(record) for key in surname_keys(name) for dob in dobs]
        for key in number_keys:
            _bucket_add(self._numbers, key, record.nic)
        for key in name_keys:
            _bucket_add(self._names, key, record.nic)
        self._keys[record.nic] = (tuple(number_keys), tuple(name_keys))

    def _unindex(self, nic: str) -> None:
        number_keys, name_keys = self._keys.pop(nic)
        for table, keys in ((self._numbers, number_keys), (self._names, name_keys)):
            for key in keys:
                _bucket_remove(table, key, nic)

    # -- inquiry --

    def search(self, criteria: Mapping[str, str]) -> list[Record]:
        """The records on file (active or located) that an inquiry hits, in entry order.

        Each identifier in ``criteria`` is its own search and the hits are
        combined, as NCIC does: ``NIC``; each number field (exact, after
        ``normalize_number``; narrowed by its companion when given, files.toml
        ``narrowing``: ``LIC`` by ``LIS``, for articles ``SER`` by ``TYP``...);
        and ``NAM`` with ``DOB`` (surname phonetically, date of birth exactly or
        within the file's window, see ``NameRule``; ``RAC`` and ``SEX`` narrow).
        Codes the index does not know (PUR, ATN...) are ignored.  A DOB that is
        not CCYYMMDD raises ValueError (the codec should have refused it).
        """
        asked = criteria if isinstance(criteria, Criteria) else _clean(criteria)
        hits: set[str] = set()
        nic = asked.get("NIC")
        if nic:
            record = self._records.get(nic)
            if record is not None:
                self.candidates_examined += 1
                if record.status in ON_FILE:
                    hits.add(nic)
        # Only the number fields the inquiry gives (usually none or one), not every one the file knows.
        for code in self._number_set.intersection(asked) if len(asked) < len(self._number_set) \
                else [c for c in self.number_fields if c in asked]:
            value = normalize_number(asked[code])
            if not value:
                continue
            for candidate in _bucket(self._numbers, (code, value)):
                self.candidates_examined += 1
                record = self._records[candidate]
                if record.status in ON_FILE and self._narrowed(record, code, asked):
                    hits.add(candidate)
        name, dob = asked.get("NAM"), asked.get("DOB")
        if name and dob:
            for key in surname_keys(name):
                for date in self._dates(dob, asked):
                    for candidate in _bucket(self._names, (key, date)):
                        self.candidates_examined += 1
                        if candidate in hits:
                            continue
                        record = self._records[candidate]
                        if record.status in ON_FILE and self._descriptors_ok(record, asked):
                            hits.add(candidate)
        return sorted((self._records[n] for n in hits), key=lambda r: self._order[r.nic])

    def scan(self, criteria: Mapping[str, str]) -> list[Record]:
        """What ``search`` returns, found by reading every record (tests only)."""
        asked = _clean(criteria)
        name, dob = asked.get("NAM"), asked.get("DOB")
        dates = set(self._dates(dob, asked)) if name and dob else set()
        keys = surname_keys(name) if dates else frozenset()
        out = []
        for record in self._records.values():
            if record.status not in ON_FILE:
                continue
            hit = bool(asked.get("NIC")) and record.nic == asked["NIC"]
            for code in self.number_fields:
                if hit:
                    break
                value = normalize_number(asked.get(code, ""))
                hit = (bool(value) and any(normalize_number(mine) == value for mine in _values(record, code))
                       and self._narrowed(record, code, asked))
            if not hit and dates:
                hit = (any(not keys.isdisjoint(surname_keys(n)) for n in _names(record))
                       and any(d in dates for d in _values(record, "DOB"))
                       and self._descriptors_ok(record, asked))
            if hit:
                out.append(record)
        return out

    def _dates(self, dob: str, asked: Mapping[str, str]) -> list[str]:
        window = self.rule.edb_years if asked.get("EDB") == "1" else self.rule.years
        return _birth_dates(dob, max(window, self.rule.years))

    def _narrowed(self, record: Record, code: str, asked: Mapping[str, str]) -> bool:
        companion = self.narrowing.get(code)
        wanted = normalize_number(asked.get(companion, "")) if companion else ""
        if not wanted:
            return True
        mine = _values(record, companion)
        # A record that never recorded the companion field is not excluded by it.
        return not mine or wanted in {normalize_number(v) for v in mine}

    def _descriptors_ok(self, record: Record, asked: Mapping[str, str]) -> bool:
        return (_race_ok(self.rule, asked.get("RAC"), _values(record, "RAC"))
                and _sex_ok(self.rule, asked.get("SEX"), _values(record, "SEX")))


class Criteria(dict):
    """Inquiry criteria already cleaned (codes and values stripped, upper case).

    A handler that searches many indexes for one inquiry (a QW reads ten) cleans
    the criteria once with ``criteria()`` and passes this to every ``search``.
    """


def criteria(fields: Mapping[str, str]) -> Criteria:
    return Criteria((code.strip().upper(), value.strip().upper())
                    for code, value in fields.items() if value is not None and value.strip())


_clean = criteria


# --- the container -----------------------------------------------------------


class RecordFiles:
    """Every RecordIndex, one per (file, record set), made with the catalogue's rules."""

    def __init__(self, catalogue: Catalogue, records: Iterable[Record] = ()) -> None:
        self.catalogue = catalogue
        self._indexes: dict[tuple[str, str], RecordIndex] = {}
        for record in records:
            self.add(record)

    @classmethod
    def load(cls, directory: Path | str, catalogue: Catalogue) -> "RecordFiles":
        return cls(catalogue, load_record_files(directory, catalogue))

    def add(self, record: Record) -> None:
        self.index(record.file, record.record_set).add(record)

    def index(self, file: str, record_set: str) -> RecordIndex:
        """The index of a file and record set, made empty on first use (run-time entries)."""
        key = (file, record_set)
        found = self._indexes.get(key)
        if found is None:
            found = self._indexes[key] = RecordIndex(file, record_set, self.catalogue)
        return found

    def sets_for(self, file: str) -> tuple[str, ...]:
        """The record sets holding records of ``file``: LEDS, NCIC, then states A-Z."""
        sets = {s for (f, s), index in self._indexes.items() if f == file and len(index)}
        return tuple(sorted(sets, key=lambda s: (STATE_SETS.index(s) if s in STATE_SETS else 2, s)))

    def files(self) -> tuple[str, ...]:
        """Every file that holds at least one record."""
        return tuple(sorted({f for (f, _), index in self._indexes.items() if len(index)}))

    def find(self, nic: str) -> Optional[Record]:
        """A record by NIC in any file and set (the NIC's letter picks the files to look in)."""
        nic = nic.strip().upper()
        for index in self._indexes.values():
            if index.letter is None or index.letter == nic[:1]:
                record = index.by_nic(nic)
                if record is not None:
                    return record
        return None

    find_nic = find

    def counts(self) -> dict[tuple[str, str], int]:
        """Records per (file, record set)."""
        return {key: len(index) for key, index in sorted(self._indexes.items()) if len(index)}

    def __len__(self) -> int:
        return sum(len(index) for index in self._indexes.values())

    def __iter__(self) -> Iterator[Record]:
        for index in list(self._indexes.values()):
            yield from index
