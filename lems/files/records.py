"""Record files: the records the file handlers serve, read, checked and written.

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

The indexes that searches go through are ``lems.files.index``; the synthetic
records of the benchmark and the property tests are ``lems.files.synthetic``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import construct as cs

from lems.wire.catalogue import Catalogue
from lems.wire.message import Record


# --- conventions -------------------------------------------------------------

# The state file and the national file; any other record set is a state code.
STATE_SETS = ("LEDS", "NCIC")

STATUSES = frozenset({"active", "located", "cleared", "cancelled", "retired"})  # retired: not validated in time
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


# What a JSON line may and must have, and a file name: for the import's one-pass reader
# (lems.files.importer.LineReader), which checks what record_from_json and validate check.
_KNOWN = frozenset({"file", "nic", "ori", "entered", "set", "caution", "status", "fields"})
_REQUIRED = frozenset({"file", "nic", "ori", "entered", "set", "fields"})
_FILE = re.compile(r"[a-z]+")


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


_COLUMNS: list[tuple[str, int, int]] = []
_at = 0
for _sub in REGISTRATION_LINE.subcons:
    _COLUMNS.append((_sub.name, _at, _at + _sub.sizeof()))
    _at += _sub.sizeof()
del _at, _sub


def registration_from_line_fast(line: bytes, catalogue: Catalogue) -> Record:
    """``registration_from_line`` by slicing the columns (the import path); a line it cannot
    vouch for goes through ``registration_from_line``, so the reason given is its."""
    if len(line) == REGISTRATION_WIDTH and line.isascii():
        text = line.decode("ascii")
        row = {name: text[start:end].rstrip(" ") for name, start, end in _COLUMNS}
        status = _FW_STATUS.get(row["status"])
        if status is not None:
            fields = tuple((code, row[code]) for code in REGISTRATION_FIELDS if row[code])
            record = Record(file="registration", nic=row["nic"], ori=row["ori"], fields=fields,
                            entered=row["entered"], record_set=row["set"], status=status)
            try:
                validate(record, catalogue)
                return record
            except ValueError:
                pass
    return registration_from_line(line, catalogue)


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
