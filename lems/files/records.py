"""Record files and the search indexes the file handlers serve.

Record files live in ``routes/records/``.  Two formats:

* ``*.jsonl``: one record per line, ``{"file", "nic", "ori", "entered", "set",
  "caution" (optional), "status" (optional, default active), "fields": [[MFC,
  value], ...]}``.  Blank lines are skipped.
* ``*.fw``: a fixed-width vehicle registration extract, the way a state DMV
  would send one; the layout is ``REGISTRATION_LINE`` below.

Record identifiers (``nic``) are one letter and nine digits.  Files that take
entries use the NCIC file letters of PROTOCOL.md 5.2; the inquiry-only data sets
use letters of their own (files.toml ``letter`` and ``id_letter``, so loading and
indexing take the ``Catalogue``).  The demo records use numbers below
000100000, run-time entries are numbered from 000100000, and
``synthetic_records`` numbers from 500000000, so the three never collide.

Criminal history and driver history records carry their printed record as
repeated ``RTX`` fields (one per line, in order) after their index fields;
``data_fields`` and ``text_lines`` split the two.

Searches go through dict indexes only (DESIGN.md: inquiry cost must barely grow
from 10 thousand to a million records); ``RecordIndex.scan`` is the slow
reference the tests hold the indexes to.
"""

from __future__ import annotations

import functools
import json
import random
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

import attrs
import construct as cs

from lems.wire.catalogue import Catalogue, FileSpec
from lems.wire.message import Record
from lems.files.phonetic import surname_keys

# --- conventions -------------------------------------------------------------

# The state file and the national file; any other record set is a state code.
STATE_SETS = ("LEDS", "NCIC")

STATUSES = frozenset({"active", "located", "cleared", "cancelled"})
# A located record stays on file until the entering agency clears it.
ON_FILE = frozenset({"active", "located"})

TEXT = "RTX"

# Synthetic (benchmark) records are numbered from here.
SYNTHETIC_BASE = 500_000_000

_NIC = re.compile(r"^[A-Z][0-9]{9}$")
_ORI = re.compile(r"^[A-Z0-9]{9}$")
_DATE = re.compile(r"^[0-9]{8}$")
_MFC = re.compile(r"^[A-Z]{3}$")
_SET = re.compile(r"^(LEDS|NCIC|[A-Z]{2})$")
_NUMBER_NOISE = re.compile(r"[\s\-]")


class RecordFileError(ValueError):
    """A record file that cannot be loaded; names the file and line."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}:{line}: {reason}")


def normalize_number(value: str) -> str:
    """Number fields compare without case, spaces or hyphens (``123-45-6789``)."""
    return _NUMBER_NOISE.sub("", value.upper())


def data_fields(record: Record) -> tuple[tuple[str, str], ...]:
    """The record's fields without its printed text lines."""
    return tuple(pair for pair in record.fields if pair[0] != TEXT)


def text_lines(record: Record) -> tuple[str, ...]:
    """The printed record (criminal history, driver history), one line each."""
    return tuple(value for code, value in record.fields if code == TEXT)


def _values(record: Record, code: str) -> list[str]:
    return [value for name, value in record.fields if name == code]


# --- JSON lines --------------------------------------------------------------


def record_from_json(obj: Any, catalogue: Catalogue) -> Record:
    """A Record from one decoded JSON line; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("a record is a JSON object")
    known = {"file", "nic", "ori", "entered", "set", "caution", "status", "fields"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    for key in ("file", "nic", "ori", "entered", "set", "fields"):
        if key not in obj:
            raise ValueError(f"missing {key!r}")
    for key in ("file", "nic", "ori", "entered", "set"):
        if not isinstance(obj[key], str):
            raise ValueError(f"{key!r} must be a string")
    fields = obj["fields"]
    if not isinstance(fields, list) or not fields:
        raise ValueError("'fields' must be a non-empty list of [MFC, value] pairs")
    pairs = []
    for pair in fields:
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(part, str) for part in pair)):
            raise ValueError(f"field {pair!r} is not a [MFC, value] pair of strings")
        # Field codes and short repeated values (SEX/M, LIS/OR...) are shared, not copied per record.
        value = pair[1]
        pairs.append((sys.intern(pair[0]), sys.intern(value) if len(value) <= 4 else value))
    caution = obj.get("caution")
    if caution is not None and not isinstance(caution, str):
        raise ValueError("'caution' must be a string")
    status = obj.get("status", "active")
    if not isinstance(status, str):
        raise ValueError("'status' must be a string")
    record = Record(file=sys.intern(obj["file"]), nic=obj["nic"], ori=sys.intern(obj["ori"]),
                    fields=tuple(pairs), entered=sys.intern(obj["entered"]), record_set=sys.intern(obj["set"]),
                    caution=sys.intern(caution) if caution else None, status=sys.intern(status))
    validate(record, catalogue)
    return record


def record_to_json(record: Record) -> dict[str, Any]:
    """The JSON line object of a record (inverse of ``record_from_json``)."""
    obj: dict[str, Any] = {"file": record.file, "nic": record.nic, "ori": record.ori,
                           "entered": record.entered, "set": record.record_set}
    if record.caution:
        obj["caution"] = record.caution
    if record.status != "active":
        obj["status"] = record.status
    obj["fields"] = [list(pair) for pair in record.fields]
    return obj


def validate(record: Record, catalogue: Catalogue) -> None:
    """Raise ValueError naming the first thing wrong with a record (its NIC letter: the catalogue's for its file)."""
    if not re.fullmatch(r"[a-z]+", record.file):
        raise ValueError(f"file {record.file!r} must be a lower-case file name")
    if not _NIC.match(record.nic):
        raise ValueError(f"nic {record.nic!r} must be one letter and 9 digits")
    letter = catalogue.file_letters.get(record.file)
    if letter is not None and record.nic[0] != letter:
        raise ValueError(f"nic {record.nic!r} of file {record.file} must start with {letter}")
    if not _ORI.match(record.ori):
        raise ValueError(f"ori {record.ori!r} must be 9 letters or digits")
    if not _DATE.match(record.entered):
        raise ValueError(f"entered {record.entered!r} must be CCYYMMDD")
    if not _SET.match(record.record_set):
        raise ValueError(f"set {record.record_set!r} must be LEDS, NCIC or a state code")
    if record.status not in STATUSES:
        raise ValueError(f"status {record.status!r} must be one of {', '.join(sorted(STATUSES))}")
    for code, value in record.fields:
        if not _MFC.match(code):
            raise ValueError(f"field code {code!r} must be three capital letters")
        if value != value.upper() or not all(" " <= ch <= "~" for ch in value):
            raise ValueError(f"field {code} value {value!r} must be printable upper-case ASCII")
        if code == "DOB" and not _DATE.match(value):
            raise ValueError(f"field DOB {value!r} must be CCYYMMDD")


# --- fixed width -------------------------------------------------------------


def _text(width: int) -> cs.Construct:
    """A space-padded, left-justified ASCII column."""
    def encode(obj: str, ctx: Any) -> bytes:
        raw = obj.encode("ascii")
        if len(raw) > width:
            raise cs.ConstructError(f"{obj!r} is longer than its {width}-column field")
        return raw.ljust(width, b" ")

    return cs.ExprAdapter(cs.Bytes(width), lambda obj, ctx: obj.decode("ascii").rstrip(" "), encode)


# One line of a DMV registration extract (without its line end).  Columns are
# named by the MFC they become; ``set`` is the state that answers for it.
REGISTRATION_LINE = cs.Struct(
    "nic" / _text(10),
    "set" / _text(2),
    "ori" / _text(9),
    "entered" / _text(8),
    "status" / _text(1),
    "LIC" / _text(10),
    "LIS" / _text(2),
    "LIY" / _text(4),
    "LIT" / _text(2),
    "VIN" / _text(20),
    "VYR" / _text(4),
    "VMA" / _text(4),
    "VMO" / _text(3),
    "VST" / _text(2),
    "VCO" / _text(7),
    "NAM" / _text(30),
    "ADR" / _text(40),
)
REGISTRATION_WIDTH = REGISTRATION_LINE.sizeof()
REGISTRATION_FIELDS = ("LIC", "LIS", "LIY", "LIT", "VIN", "VYR", "VMA", "VMO", "VST", "VCO", "NAM", "ADR")
_FW_STATUS = {"A": "active", "L": "located", "C": "cleared", "X": "cancelled"}
_FW_STATUS_CODE = {name: code for code, name in _FW_STATUS.items()}


def registration_from_line(line: bytes, catalogue: Catalogue) -> Record:
    """A registration Record from one fixed-width line; ValueError if malformed."""
    if len(line) != REGISTRATION_WIDTH:
        raise ValueError(f"line is {len(line)} characters, the layout is {REGISTRATION_WIDTH}")
    try:
        row = REGISTRATION_LINE.parse(line)
    except (cs.ConstructError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a registration line: {exc}") from None
    if row.status not in _FW_STATUS:
        raise ValueError(f"status column {row.status!r} must be one of {''.join(_FW_STATUS)}")
    fields = tuple((code, row[code]) for code in REGISTRATION_FIELDS if row[code])
    record = Record(file="registration", nic=row.nic, ori=row.ori, fields=fields,
                    entered=row.entered, record_set=row.set, status=_FW_STATUS[row.status])
    validate(record, catalogue)
    return record


def registration_to_line(record: Record) -> bytes:
    """The fixed-width line of a registration (inverse of ``registration_from_line``)."""
    row = {"nic": record.nic, "set": record.record_set, "ori": record.ori,
           "entered": record.entered, "status": _FW_STATUS_CODE[record.status]}
    for code in REGISTRATION_FIELDS:
        row[code] = record.get(code, "") or ""
    try:
        return REGISTRATION_LINE.build(row)
    except (cs.ConstructError, UnicodeEncodeError) as exc:
        raise ValueError(f"registration {record.nic} does not fit the layout: {exc}") from None


# --- loading -----------------------------------------------------------------


def _load_jsonl(path: Path, catalogue: Catalogue) -> Iterator[tuple[int, Record]]:
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            yield number, record_from_json(json.loads(raw.decode("ascii")), catalogue)
        except UnicodeDecodeError:
            raise RecordFileError(path, number, "not ASCII") from None
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise RecordFileError(path, number, str(exc)) from None


def _load_fixed_width(path: Path, catalogue: Catalogue) -> Iterator[tuple[int, Record]]:
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        # '#' lines document the layout in the file itself.
        if not line.strip() or line.startswith(b"#"):
            continue
        try:
            yield number, registration_from_line(line, catalogue)
        except ValueError as exc:
            raise RecordFileError(path, number, str(exc)) from None


def load_record_files(directory: Path | str, catalogue: Catalogue) -> list[Record]:
    """Every record in ``directory``'s ``*.jsonl`` and ``*.fw`` files, in file name order.

    A malformed record, or a NIC used twice, raises RecordFileError naming the
    file and line.
    """
    directory = Path(directory)
    records: list[Record] = []
    seen: dict[str, str] = {}
    paths = sorted(list(directory.glob("*.jsonl")) + list(directory.glob("*.fw")))
    for path in paths:
        loader = _load_fixed_width if path.suffix == ".fw" else _load_jsonl
        for number, record in loader(path, catalogue):
            if record.nic in seen:
                raise RecordFileError(path, number, f"nic {record.nic} already used at {seen[record.nic]}")
            seen[record.nic] = f"{path.name}:{number}"
            records.append(record)
    return records


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


# --- synthetic records (benchmark, property tests) ---------------------------

_ONSETS = ["B", "BR", "C", "CH", "D", "DR", "F", "G", "GR", "H", "J", "K", "KL", "L", "M",
           "N", "P", "PR", "R", "S", "SH", "ST", "T", "TR", "V", "W", "Z"]
_VOWELS = ["A", "E", "I", "O", "U", "AI", "EA", "OO"]
_CODAS = ["", "", "N", "R", "L", "M", "S", "T", "CK", "ND", "RT", "X", "LD"]
_ENDINGS = ["", "SON", "MAN", "TON", "BY", "LEY", "ER", "INE", "SKI", "OW", "ETT", "FORD"]
_FIRST = ["TEST", "SAMPLE", "DEMO", "FAKE", "MOCK", "DUMMY", "PLACEHOLDER", "EXAMPLE",
          "SYNTH", "TRIAL"]
_RACES = ["W", "W", "W", "B", "A", "I", "U"]
_EYES = ["BRO", "BLU", "GRN", "HAZ", "GRY"]
_HAIR = ["BRO", "BLK", "BLN", "RED", "GRY", "BLD"]
_STATES = ["OR", "WA", "CA", "ID", "NV"]
_MAKES = [("FORD", "F15", "PK"), ("TOYT", "CAM", "4D"), ("HOND", "CIV", "4D"),
          ("CHEV", "SIL", "PK"), ("SUBA", "OUT", "SW"), ("DODG", "RAM", "PK")]
_COLORS = ["BLK", "WHI", "SIL", "RED", "BLU", "GRN", "GRY"]
_GUNS = [("GLK", "9MM", "PI"), ("SMW", "38", "RV"), ("RUG", "22", "RI"),
         ("REM", "12", "SG"), ("SIG", "45", "PI")]
_ARTICLES = ["CAMERA", "LAPTOP", "BICYCL", "TOOLS", "JEWELR", "PHONE", "TV"]
_SECURITIES = ["CK", "MO", "TC", "BD"]
_BOATS = [("BAYL", "CF"), ("SEAR", "RB"), ("TRAC", "FB"), ("ALUM", "JB")]
_ALNUM = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O or Q: VINs and plates avoid them


def _alnum(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, len(_ALNUM))
        digits.append(_ALNUM[rest])
    return "".join(reversed(digits))


def synthetic_surname(rng: random.Random) -> str:
    """A made-up, pronounceable surname.  These syllables give thousands of
    Soundex codes, so name buckets stay small however many records are made."""
    return (rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
            + rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_ENDINGS))


def _date(rng: random.Random, first_year: int, last_year: int) -> str:
    return f"{rng.randint(first_year, last_year):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _person(rng: random.Random) -> list[tuple[str, str]]:
    return [("NAM", f"{synthetic_surname(rng)}, {rng.choice(_FIRST)} {rng.choice('ABCDEFGHJKLMNPRSTW')}"),
            ("SEX", rng.choice("MF")), ("RAC", rng.choice(_RACES)), ("DOB", _date(rng, 1945, 2008)),
            ("HGT", f"{rng.randint(5, 6)}{rng.randint(0, 11):02d}"), ("WGT", f"{rng.randint(110, 280):03d}"),
            ("EYE", rng.choice(_EYES)), ("HAI", rng.choice(_HAIR))]


def _synthetic_fields(file: str, record_set: str, i: int, rng: random.Random) -> list[tuple[str, str]]:
    oca = ("OCA", f"SYN-{i:09d}")
    state = record_set if len(record_set) == 2 else "OR"
    soc = ("SOC", f"9{i % 10**8:08d}")  # 9xx areas are never issued: obviously synthetic
    if file in ("wanted", "missing", "protection", "supervised", "sexoffender", "prohibited"):
        extra = {
            "wanted": lambda: [("OFF", rng.choice(["2399", "1313", "5499", "3562"])),
                               ("DOW", _date(rng, 2015, 2025)), oca],
            "missing": lambda: [("MNP", rng.choice(["D", "EME", "EMI", "EMJ", "EMV", "EMO"])),
                                ("DLC", _date(rng, 2015, 2025)), oca],
            "protection": lambda: [("PNO", f"SYNPO{i:09d}"), ("EXP", _date(rng, 2026, 2030)),
                                   ("PPN", f"{synthetic_surname(rng)}, {rng.choice(_FIRST)}"), oca],
            "supervised": lambda: [("OFF", rng.choice(["3562", "2399", "1313"])),
                                   ("SON", f"PO {synthetic_surname(rng)}"), ("EXP", _date(rng, 2026, 2030)), oca],
            "sexoffender": lambda: [("SOR", f"SYNSOR{i:09d}"), ("ERD", _date(rng, 2000, 2025))],
            "prohibited": lambda: [("PPT", rng.choice(["MENTAL HEALTH COMMITMENT", "COURT ORDER"])), oca],
        }[file]
        return _person(rng) + [soc] + extra()
    if file == "history":
        return _person(rng) + [("FBI", f"{i:09d}Y"), ("SID", f"{state}{i:09d}"), soc,
                               (TEXT, "ARREST " + _date(rng, 1995, 2025) + " SYNTHETIC PD"),
                               (TEXT, "  CHARGE 1 SYNTHETIC OFFENSE - DISPOSITION CONVICTED")]
    if file == "corrections":
        return _person(rng) + [("SID", f"{state}{i:09d}"), ("CST", rng.choice(["PAROLE", "PROBATION"])),
                               ("SON", f"PO {synthetic_surname(rng)}"), ("EXP", _date(rng, 2026, 2030))]
    if file == "driver":
        return _person(rng) + [("OLN", f"S{i:09d}"), ("OLS", state), ("OLY", str(rng.randint(2026, 2032))),
                               ("OLC", "C"), ("DLS", rng.choice(["VALID", "VALID", "SUSPENDED"]))]
    if file == "driverhistory":
        return _person(rng) + [("OLN", f"S{i:09d}"), ("OLS", state),
                               (TEXT, _date(rng, 2015, 2025) + " CONV SPEEDING SYNTHETIC")]
    if file in ("vehicle", "plate", "registration"):
        make, model, style = rng.choice(_MAKES)
        plate = [("LIC", "SY" + _alnum(i, 6)), ("LIS", state if file == "registration" else rng.choice(_STATES)),
                 ("LIY", str(rng.randint(2025, 2028))), ("LIT", "PC")]
        if file == "plate":
            return plate + [("DOT", _date(rng, 2020, 2025)), oca]
        vehicle = [("VIN", "5SYN" + _alnum(i, 13)), ("VYR", str(rng.randint(1995, 2025))), ("VMA", make),
                   ("VMO", model), ("VST", style), ("VCO", rng.choice(_COLORS))]
        if file == "registration":
            return plate + vehicle + [("NAM", f"{synthetic_surname(rng)}, {rng.choice(_FIRST)}"),
                                      ("ADR", f"{rng.randint(1, 9999)} SYNTHETIC ST")]
        return plate + vehicle + [("DOT", _date(rng, 2020, 2025)), oca]
    if file == "gun":
        make, caliber, kind = rng.choice(_GUNS)
        return [("SER", "SYG" + _alnum(i, 7)), ("MAK", make), ("CAL", caliber), ("TYP", kind),
                ("DOT", _date(rng, 2015, 2025)), oca]
    if file == "article":
        return [("SER", "SYA" + _alnum(i, 7)), ("TYP", rng.choice(_ARTICLES)), ("BRA", "SYNBRAND"),
                ("DOT", _date(rng, 2020, 2025)), oca]
    if file == "securities":
        return [("SER", "SYS" + _alnum(i, 7)), ("TYP", rng.choice(_SECURITIES)),
                ("DEN", str(rng.choice([20, 50, 100, 500]))), ("ISS", "SYNTHETIC BANK"),
                ("DOT", _date(rng, 2020, 2025)), oca]
    if file in ("boat", "boatreg"):
        make, kind = rng.choice(_BOATS)
        fields = [("REG", f"{state}{i:09d}"), ("BHN", "SYB" + _alnum(i, 9)),
                  ("BYR", str(rng.randint(1980, 2025))), ("BMA", make), ("BTY", kind)]
        if file == "boatreg":
            return fields + [("NAM", f"{synthetic_surname(rng)}, {rng.choice(_FIRST)}")]
        return fields + [("DOT", _date(rng, 2020, 2025)), oca]
    raise ValueError(f"no synthetic records for file {file!r}")


def default_record_set(file: FileSpec) -> str:
    """Where a file's records usually live: NCIC, LEDS for prohibited persons,
    OR for the Nlets-emulated state data sets (inquiry only, but for III history)."""
    if file.name == "prohibited":
        return "LEDS"
    if file.letter is None and file.name != "history":
        return "OR"
    return "NCIC"


@functools.cache
def shipped_catalogue() -> Catalogue:
    """The catalogues lems ships with: formats/ of this checkout, else of the demo home pip installed."""
    checkout = Path(__file__).resolve().parents[2] / "formats"
    return Catalogue.load(checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "lems" / "demo" / "formats")


def synthetic_records(file: str, n: int, seed: int, record_set: Optional[str] = None,
                      first: int = SYNTHETIC_BASE, catalogue: Optional[Catalogue] = None) -> Iterator[Record]:
    """``n`` plausible, obviously fake records of ``file``, the same for the same seed.

    NICs run from ``first`` (500000000 by default, clear of demo and run-time
    numbers); the numbers on a record (VIN, LIC, SER, SOC, OLN...) come from its
    NIC number, so they are unique within one call.  ``record_set`` defaults to
    ``default_record_set(file)``.  The file's letter comes from ``catalogue``
    (default: ``shipped_catalogue()``, for callers without a home at hand).
    """
    spec = (catalogue or shipped_catalogue()).files.get(file)
    if spec is None:
        raise ValueError(f"no synthetic records for file {file!r}")
    record_set = record_set or default_record_set(spec)
    letter = spec.record_letter
    rng = random.Random(f"{file}/{record_set}/{seed}")
    ori = "WA9990100" if record_set == "WA" else "OR9990100"
    for i in range(n):
        number = first + i
        fields = _synthetic_fields(file, record_set, number, rng)
        caution = None
        if file == "wanted" and rng.random() < 0.1:
            caution = "WARNING - SUBJECT MAY BE ARMED AND DANGEROUS"
            fields.append(("CMC", "00"))
        yield Record(file=file, nic=f"{letter}{number:09d}", ori=ori, fields=tuple(fields),
                     entered=_date(rng, 2015, 2025), record_set=record_set, caution=caution)
