"""The search indexes the file handlers serve (PROTOCOL.md 5.2 search rules).

The records live in the store (``lems.store.records``: tables ``record`` and
``record_key``), not in memory: a restart reloads nothing, memory does not grow
with the data, and a record another process writes is found at once.  Searches
are index look-ups only (DESIGN.md: inquiry cost must barely grow from 10
thousand to a million records): one ``key IN (...)`` query on the indexed key
column; ``RecordIndex.scan`` is the slow reference the tests hold them to.

This module decides what the keys are (``record_keys``: each number field's
normalized value, and each phonetic surname key with each date of birth) and
what a candidate a key finds must also satisfy (narrowing, race and sex);
the store only stores and looks up.  ``RecordFiles`` holds the indexes of every
file and record set, finds a record by NIC, and answers one inquiry across many
indexes with one query (``RecordFiles.search_many``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import attrs

from lems.files.phonetic import soundex, surname_keys
from lems.files.records import ON_FILE, STATE_SETS, _DATE, _values, normalize_number
from lems.store.records import DuplicateNic, RecordStore, Row
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


# --- keys and rows -------------------------------------------------------------

# Bump when what a key is changes: the store makes every key again (``key_rules``).
KEY_VERSION = 1
_SEP, _PAIR = "\x1e", "\x1f"


def number_key(code: str, normalized: str) -> str:
    return f"{code}={normalized}"


def name_key(phonetic: str, dob: str) -> str:
    return f"~{phonetic}|{dob}"


_PLAIN_SURNAME = re.compile(r"([A-Z]+) *,")


def fast_surname_keys(name: str) -> frozenset[str] | tuple[str]:
    """``surname_keys(name)``, without its general machinery for the usual ``LAST, FIRST`` name
    whose surname is one word of letters (its only key is that word's Soundex)."""
    match = _PLAIN_SURNAME.match(name)
    if match is not None:
        return (soundex(match.group(1)),)
    return surname_keys(name)


def record_keys(record: Record, numbers: frozenset[str] | tuple[str, ...]) -> list[str]:
    """The search keys of a record: ``MFC=value`` for each number field (normalized) and
    ``~KEY|DOB`` for each phonetic key of each name (NAM, AKA) with each date of birth."""
    keys = []
    dobs = []
    names = []
    for code, value in record.fields:
        if code in numbers:
            value = normalize_number(value)
            if value:
                keys.append(f"{code}={value}")
        elif code == "DOB":
            if _DATE.match(value):
                dobs.append(value)
        elif code == "NAM" or code == "AKA":
            names.append(value)
    if dobs and names:
        for name in names:
            for key in fast_surname_keys(name):
                for dob in dobs:
                    keys.append(f"~{key}|{dob}")
    return keys


def key_rules(catalogue: Catalogue) -> str:
    """A fingerprint of what the keys depend on (the files' number fields): when it
    changes, the keys in the store are made again."""
    numbers = {name: list(catalogue.search_rule(name).numbers) for name in sorted(catalogue.files)}
    text = json.dumps([KEY_VERSION, numbers], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def encode_fields(fields: Sequence[tuple[str, str]], printable: bool = False) -> str:
    """A record's fields as stored: ``MFC<US>value<RS>MFC<US>value``, JSON if a value holds either.
    ``printable``: the record was validated (printable ASCII only), so neither can occur."""
    text = _SEP.join([code + _PAIR + value for code, value in fields])
    if printable:
        return text
    if text.count(_PAIR) != len(fields) or text.count(_SEP) != max(len(fields) - 1, 0) or text.startswith("["):
        return json.dumps([list(pair) for pair in fields], separators=(",", ":"))
    return text


def decode_fields(text: str) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    if text[0] == "[":
        return tuple((code, value) for code, value in json.loads(text))
    return tuple(tuple(part.split(_PAIR, 1)) for part in text.split(_SEP))  # type: ignore[misc]


# --- the index ---------------------------------------------------------------


class RecordIndex:
    """The records of one file in one record set, indexed for inquiry (in the store).

    Indexes (store table ``record_key``, an SQL index, never scanned): NIC;
    ``MFC=value`` for each number field (normalized); ``~KEY|DOB`` for every
    phonetic surname key of every name (NAM and AKA) with every date of birth on
    the record.  The name key holds the whole date rather than the birth year
    because month and day must match under every rule, so the buckets are ~365
    times smaller; an EDB search reads one bucket per year of the window.

    ``candidates_examined`` counts the records looked at by ``search`` since the
    index was made: it is how tests show a search reads only its buckets.

    The number fields, their narrowing and the file's letter are read from the
    catalogue once, here, never per lookup.  Without ``records`` (a test, a tool)
    the index lives in a private in-memory store.
    """

    def __init__(self, file: str, record_set: str, catalogue: Catalogue,
                 records: Optional[RecordStore] = None) -> None:
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
        self.records = records if records is not None else memory_records()
        self._home: Optional[int] = None

    @property
    def home(self) -> Optional[int]:
        if self._home is None:
            self._home = self.records.home(self.file, self.record_set)
        return self._home

    def __len__(self) -> int:
        return self.records.count(self.home)

    def __iter__(self) -> Iterator[Record]:
        if self.home is None:
            return iter(())
        return (self._record(row) for row in list(self.records.rows(self.home)))

    def __repr__(self) -> str:
        return f"<RecordIndex {self.file}/{self.record_set} {len(self)} records>"

    def keys(self, record: Record) -> list[str]:
        return record_keys(record, self._number_set)

    def _record(self, row: Row) -> Record:
        return Record(file=self.file, nic=row[1], ori=row[4], fields=decode_fields(row[7]), entered=row[5],
                      record_set=self.record_set, caution=row[6], status=row[3])

    # -- maintenance --

    def add(self, record: Record) -> None:
        """Put a new record on file; ValueError if its NIC is taken or it belongs elsewhere."""
        self._check_home(record)
        home = self.home if self.home is not None else self.records.home(self.file, self.record_set, create=True)
        self._home = home
        try:
            self.records.insert(home, record.nic, record.status, record.ori, record.entered, record.caution,
                                encode_fields(record.fields), self.keys(record))
        except DuplicateNic as exc:
            raise ValueError(f"nic {record.nic} is already on file ({exc.where}), "
                             f"adding to {self.file}/{self.record_set}") from None

    def replace(self, record: Record) -> Record:
        """Swap in a new version of a record (modify, locate, clear); returns the old one."""
        row = self._row(record.nic)
        if row is None:
            raise KeyError(f"nic {record.nic} is not on file in {self.file}/{self.record_set}")
        self._check_home(record)
        old = self._record(row)
        self.records.update(row[0], row[2], record.status, record.ori, record.entered, record.caution,
                            encode_fields(record.fields), self.keys(old), self.keys(record))
        return old

    def remove(self, nic: str) -> Record:
        """Take a record off file entirely; returns it (KeyError if unknown)."""
        row = self._row(nic)
        if row is None:
            raise KeyError(f"nic {nic} is not on file in {self.file}/{self.record_set}")
        old = self._record(row)
        self.records.delete(row[0], row[2], self.keys(old))
        return old

    def by_nic(self, nic: str) -> Optional[Record]:
        """The record with this NIC whatever its status, or None."""
        row = self._row(nic.strip().upper())
        return self._record(row) if row is not None else None

    def _row(self, nic: str) -> Optional[Row]:
        home = self.home
        if home is None:
            return None
        row = self.records.by_nic(nic)
        return row if row is not None and row[2] == home else None

    def _check_home(self, record: Record) -> None:
        if record.file != self.file or record.record_set != self.record_set:
            raise ValueError(f"record {record.nic} is {record.file}/{record.record_set}, "
                             f"this index holds {self.file}/{self.record_set}")

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
        One SQL query on the key index.
        """
        asked = criteria if isinstance(criteria, Criteria) else _clean(criteria)
        home = self.home
        if home is None:
            if asked.get("NAM") and asked.get("DOB"):
                self._dates(asked["DOB"], asked)  # a bad DOB is refused even by an empty file
            return []
        numbers, names = self._lookups(asked)
        nic = asked.get("NIC")
        by_nic = self.records.by_nic(nic) if nic else None
        found = self.records.candidates(list(numbers) + list(names), (home,))
        return self._select(asked, numbers, names, by_nic, found)

    def _lookups(self, asked: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
        """The keys an inquiry reads: number key -> its field code; the name keys."""
        numbers: dict[str, str] = {}
        # Only the number fields the inquiry gives (usually none or one), not every one the file knows.
        for code in (self._number_set.intersection(asked) if len(asked) < len(self._number_set)
                     else [c for c in self.number_fields if c in asked]):
            value = normalize_number(asked[code])
            if value:
                numbers[f"{code}={value}"] = code
        names: set[str] = set()
        name, dob = asked.get("NAM"), asked.get("DOB")
        if name and dob:
            dates = self._dates(dob, asked)
            for key in surname_keys(name):
                for date in dates:
                    names.add(f"~{key}|{date}")
        return numbers, names

    def _select(self, asked: Mapping[str, str], numbers: Mapping[str, str], names: set[str],
                by_nic: Optional[Row], found: Iterable[tuple[str, Row]]) -> list[Record]:
        """The hits among the candidates the keys found (this index's rows only)."""
        hits: dict[int, Record] = {}
        home = self._home
        if by_nic is not None and by_nic[2] == home:
            self.candidates_examined += 1
            if by_nic[3] in ON_FILE:
                hits[by_nic[0]] = self._record(by_nic)
        for key, row in found:
            if row[2] != home:
                continue
            self.candidates_examined += 1
            if row[3] not in ON_FILE:
                continue
            rid = row[0]
            code = numbers.get(key)
            if code is not None:
                if rid not in hits:
                    record = self._record(row)
                    if self._narrowed(record, code, asked):
                        hits[rid] = record
            elif key in names and rid not in hits:
                record = self._record(row)
                if self._descriptors_ok(record, asked):
                    hits[rid] = record
        return [hits[rid] for rid in sorted(hits)]

    def scan(self, criteria: Mapping[str, str]) -> list[Record]:
        """What ``search`` returns, found by reading every record (tests only)."""
        asked = _clean(criteria)
        name, dob = asked.get("NAM"), asked.get("DOB")
        dates = set(self._dates(dob, asked)) if name and dob else set()
        keys = surname_keys(name) if dates else frozenset()
        out = []
        for record in self:
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

    def _dates(self, dob: str, asked: Mapping[str, str]) -> tuple[str, ...]:
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


def memory_records() -> RecordStore:
    """Record tables in a private in-memory store (tests, tools without a home)."""
    from lems.store.sqlite import Store

    return RecordStore(Store.open(":memory:"))


class RecordFiles:
    """Every RecordIndex, one per (file, record set), made with the catalogue's rules,
    over the record tables of one store (a private in-memory one without ``records``)."""

    def __init__(self, catalogue: Catalogue, records: Iterable[Record] = (),
                 store: Optional[RecordStore] = None) -> None:
        self.catalogue = catalogue
        self.records = store if store is not None else memory_records()
        self._indexes: dict[tuple[str, str], RecordIndex] = {}
        for record in records:
            self.add(record)

    def _all_keys(self, asked: Mapping[str, str]) -> list[str]:
        """Every key any index could read for an inquiry: each number field given (a key a file
        does not index is in no file's records), each name key in the widest date window."""
        numbers = self._numbers
        if numbers is None:
            numbers = self._numbers = frozenset(
                code for name in self.catalogue.files for code in self.catalogue.search_rule(name).numbers)
        keys = []
        for code, value in asked.items():
            if code in numbers:
                value = normalize_number(value)
                if value:
                    keys.append(f"{code}={value}")
        name, dob = asked.get("NAM"), asked.get("DOB")
        if name and dob:
            edb = asked.get("EDB") == "1"
            window = max(max(rule.edb_years if edb else rule.years, rule.years)
                         for rule in (NCIC_RULE, *NAME_RULES.values()))
            dates = _birth_dates(dob, window)
            for key in surname_keys(name):
                keys.extend(f"~{key}|{date}" for date in dates)
        return keys

    _numbers: Optional[frozenset[str]] = None

    @classmethod
    def load(cls, directory: Path | str, catalogue: Catalogue) -> "RecordFiles":
        """The record files of ``directory`` imported into a private in-memory store."""
        from lems.files.importer import sync

        files = cls(catalogue)
        sync(files, Path(directory))
        return files

    def add(self, record: Record) -> None:
        self.index(record.file, record.record_set).add(record)

    def forget_homes(self) -> None:
        """After a rolled-back import: the indexes ask the store for their home again."""
        for index in self._indexes.values():
            index._home = None

    def index(self, file: str, record_set: str) -> RecordIndex:
        """The index of a file and record set (its records are made on first use: run-time entries)."""
        key = (file, record_set)
        found = self._indexes.get(key)
        if found is None:
            found = self._indexes[key] = RecordIndex(file, record_set, self.catalogue, self.records)
        return found

    def sets_for(self, file: str) -> tuple[str, ...]:
        """The record sets holding records of ``file``: LEDS, NCIC, then states A-Z."""
        sets = {s for (f, s) in self.records.counts() if f == file}
        return tuple(sorted(sets, key=lambda s: (STATE_SETS.index(s) if s in STATE_SETS else 2, s)))

    def files(self) -> tuple[str, ...]:
        """Every file that holds at least one record."""
        return tuple(sorted({f for (f, _) in self.records.counts()}))

    def find(self, nic: str) -> Optional[Record]:
        """A record by NIC in any file and set (NICs are unique across files)."""
        row = self.records.by_nic(nic.strip().upper())
        if row is None:
            return None
        return self.index(*self.records.home_name(row[2]))._record(row)

    find_nic = find

    def counts(self) -> dict[tuple[str, str], int]:
        """Records per (file, record set)."""
        return self.records.counts()

    def __len__(self) -> int:
        return self.records.total()

    def __iter__(self) -> Iterator[Record]:
        for row in self.records.rows():
            yield self.index(*self.records.home_name(row[2]))._record(row)

    def search_many(self, criteria: Mapping[str, str],
                    homes: Optional[Iterable[tuple[str, str]]] = None) -> "Hits":
        """One inquiry against many indexes (a QW: five files, two sets) with one query.

        The keys are those every index asked would read; the candidates are then
        sorted out per index by its own rules (``Hits.get``, what ``search`` would
        return).  ``homes`` None: every file and set."""
        asked = criteria if isinstance(criteria, Criteria) else _clean(criteria)
        if homes is not None:
            indexes = [self.index(f, s) for f, s in homes]
            keys: dict[str, None] = {}
            for index in indexes:
                numbers, names = index._lookups(asked)
                keys.update(dict.fromkeys(numbers))
                keys.update(dict.fromkeys(names))
        else:
            keys = dict.fromkeys(self._all_keys(asked))
        nic = asked.get("NIC")
        by_nic = self.records.by_nic(nic) if nic else None
        if homes is not None:
            wanted = [i.home for i in indexes if i.home is not None]
            found = self.records.candidates(list(keys), wanted) if wanted else []
        else:
            found = self.records.candidates(list(keys))
        per_home: dict[int, list[tuple[str, Row]]] = {}
        for key, row in found:
            per_home.setdefault(row[2], []).append((key, row))
        return Hits(asked, by_nic, per_home)


@attrs.define
class Hits:
    """The candidates of one ``search_many``; ``get(index)`` is that index's ``search``."""

    asked: Criteria
    by_nic: Optional[Row]
    per_home: dict[int, list[tuple[str, Row]]]

    def get(self, index: RecordIndex) -> list[Record]:
        home = index.home
        if home is None:
            return []
        found = self.per_home.get(home)
        if found is None and (self.by_nic is None or self.by_nic[2] != home):
            return []  # nothing of this file and set came back: most of the indexes a QW asks
        numbers, names = index._lookups(self.asked)
        return index._select(self.asked, numbers, names, self.by_nic, found or ())
