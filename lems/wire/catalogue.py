"""The message catalogues (formats/*.toml) as frozen values.

A catalogue directory holds ``files.toml`` (the record files: NIC letter, hit
title, reply wording, duplicate key, caution wording, the number fields an
inquiry finds a record by, the hit confirmation type that confirms it) and one TOML file per
message family (``ncic.toml``, ``nlets.toml``, ``leds.toml``, ``control.toml``...)
defining code lists, fields and keys.  Fields and code lists are one namespace
across the directory, so a key in nlets.toml may use a field defined in
ncic.toml.  The attribute notes at the top of formats/ncic.toml and
formats/nlets.toml are the reference for the file format.

``Catalogue.load(path)`` reads and checks everything; a broken directory raises
``CatalogueError`` whose message names the file and what is wrong, so the console
can refuse a reload and say why.  Nothing here knows a particular key: adding a
key or changing a field is an edit of the TOML.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

import attrs
import structlog

FAMILIES = ("ncic", "nlets", "leds", "control")
ACTIONS = ("inquiry", "enter", "modify", "cancel", "locate", "clear", "admin", "reply", "control")
CATEGORIES = ("investigative", "criminal-history", "motor-vehicle", "corrections", "prohibited",
              "admin", "status", "hit-confirmation", "control", "validation")
LEVELS = ("inquiry", "entry", "full")
FORMATS = ("date", "name", "ori", "nic", "numeric", "alpha", "alnum", "text", "code", "secret")
REJECT_CODES = (".12.", ".13.", ".22.", ".23.")
FILES_TOML = "files.toml"

# Lengths the format itself fixes; (min, max).  None: the catalogue must say.
_NATURAL_LENGTH: dict[str, tuple[int, Optional[int]]] = {
    "date": (8, 8), "name": (3, 30), "ori": (9, 9), "nic": (10, 10),
    "numeric": (1, None), "alpha": (1, None), "alnum": (1, None), "text": (1, None),
    "code": (1, None), "secret": (1, None),
}
# NAM: LAST, FIRST MIDDLE.  Bounded by the 30-character check that runs first.
_NAME = re.compile(r"[A-Z][A-Z'\- ]*, ?[A-Z][A-Z'\- ]*")
_FIELD_KEYS = {"title", "format", "min", "max", "codes", "codelist", "pattern", "repeat", "reject", "fold",
               "criteria", "code"}
_KEY_KEYS = {"title", "file", "action", "category", "level", "fields", "positional", "required", "like", "add",
             "example", "reply", "free_text", "fold_body", "max_length", "max_dests", "ori"}
_FILE_KEYS = {"letter", "id_letter", "title", "kind", "record_word", "confirm_line", "duplicate", "caution",
              "numbers", "narrowing", "rty", "identified_by"}
_KIND_KEYS = {"record_word", "confirm_line"}
# files.toml: what every file shares, table -> its attributes (each a list of field codes, or a code -> code table).
_SHARED = {"search": {"numbers": list, "narrowing": dict}, "maintenance": {"identifiers": list},
           "hit_confirmation": {"compared": list}}
_RTY = re.compile(r"[A-Z]{2}")
_MAINTENANCE = ("enter", "modify", "cancel", "locate", "clear")
_TOP_KEYS = {"family", "category", "max_length", "max_dests", "levels", "codes", "field", "key"}


class CatalogueError(Exception):
    """formats/ is broken; the message names the file and the problem."""


# Reply wording of files.toml: one line of printable ASCII, no surrounding spaces.
_REPLY_TEXT = re.compile(r"[!-~](?:[ -~]*[!-~])?")
# What may be empty: a file whose hits carry no instruction line says confirm_line = "".
_MAY_BE_EMPTY = frozenset({"confirm_line"})


def _check_reply_text(at: str, attr: str, value: Any) -> None:
    """A caution, record_word or confirm_line of files.toml is one line of text (confirm_line may be "")."""
    if isinstance(value, str) and (_REPLY_TEXT.fullmatch(value) or (value == "" and attr in _MAY_BE_EMPTY)):
        return
    hint = ' (confirm_line = "" for a file whose hits carry no instruction line)' if attr in _MAY_BE_EMPTY else ""
    raise CatalogueError(f"{at}: {attr} must be one line of text, printable ASCII without leading "
                         f"or trailing spaces{hint}")


def shipped_formats() -> Path:
    """The catalogues lems ships with: formats/ of this checkout, else of the demo home pip installed."""
    checkout = Path(__file__).resolve().parents[2] / "formats"
    if (checkout / FILES_TOML).is_file():
        return checkout
    return Path(sys.prefix) / "share" / "lems" / "demo" / "formats"


# What files.toml says about files since the file knowledge left the code; a
# home written before then has none of it (see _Loader.upgrade).
_SINCE_0_2 = ("kind", *_SHARED)
_FILE_KEYS_SINCE_0_2 = ("id_letter", "rty", "identified_by", "numbers", "narrowing", "confirm_line")


def _proxy(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


# -- fields ----------------------------------------------------------------------------


@attrs.frozen
class FieldSpec:
    """One field a key may carry: ``code`` is the MFC on the wire, ``id`` the catalogue name."""

    id: str
    code: str
    title: str
    format: str
    min: int
    max: int
    codes: Optional[tuple[str, ...]] = None
    pattern: Optional[str] = None
    repeat: bool = False
    reject: Optional[str] = None
    fold: bool = True
    criteria: bool = True
    _code_set: frozenset[str] = attrs.field(default=frozenset(), eq=False, repr=False)
    _regex: Optional[re.Pattern[str]] = attrs.field(default=None, eq=False, repr=False)

    @property
    def invalid_code(self) -> str:
        """The switch code an invalid value gives (``.12.``, or ``.23.`` for PUR/ATN on CHRI keys)."""
        return self.reject or ".12."

    @property
    def missing_code(self) -> str:
        return self.reject or ".13."

    def problem(self, value: str) -> Optional[str]:
        """Why ``value`` is not valid for this field, or None.  Every branch is linear in len(value)."""
        n = len(value)
        if n < self.min or n > self.max:
            if n == 0:
                return f"INVALID FIELD {self.code} - EMPTY"
            size = str(self.max) if self.min == self.max else f"{self.min} TO {self.max}"
            return f"INVALID FIELD {self.code} - LENGTH {n}, MUST BE {size}"
        check = _FORMAT_CHECKS[self.format]
        why = check(self, value)
        if why:
            return f"INVALID FIELD {self.code} - {why}"
        if self._regex is not None and self._regex.fullmatch(value) is None:
            return f"INVALID FIELD {self.code} - {_show(value)} IS NOT IN THE REQUIRED FORMAT"
        return None


def _show(value: str) -> str:
    return value if len(value) <= 20 else value[:20] + "..."


def _check_date(spec: FieldSpec, value: str) -> Optional[str]:
    if value.isdigit():
        try:
            _dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
            return None
        except ValueError:
            pass
    return f"{_show(value)} IS NOT A DATE CCYYMMDD"


def _check_name(spec: FieldSpec, value: str) -> Optional[str]:
    return None if _NAME.fullmatch(value) else "MUST BE LAST, FIRST MIDDLE"


def _check_ori(spec: FieldSpec, value: str) -> Optional[str]:
    return None if value.isalnum() and value.isascii() else "ORI MUST BE 9 LETTERS OR DIGITS"


def _check_nic(spec: FieldSpec, value: str) -> Optional[str]:
    if value[0] in spec._code_set and value[1:].isdigit() and value.isascii():
        return None
    return f"NIC MUST BE A FILE LETTER ({' '.join(spec.codes or ())}) AND 9 DIGITS"


def _check_numeric(spec: FieldSpec, value: str) -> Optional[str]:
    return None if value.isdigit() and value.isascii() else "MUST BE DIGITS"


def _check_alpha(spec: FieldSpec, value: str) -> Optional[str]:
    return None if value.isalpha() and value.isascii() and value.isupper() else "MUST BE LETTERS"


def _check_alnum(spec: FieldSpec, value: str) -> Optional[str]:
    if value.isalnum() and value.isascii() and value == value.upper():
        return None
    return "MUST BE LETTERS AND DIGITS"


def _check_text(spec: FieldSpec, value: str) -> Optional[str]:
    # Periods never reach a value (they separate fields); line breaks could.
    return "MUST NOT CONTAIN A LINE BREAK" if "\n" in value else None


def _check_code(spec: FieldSpec, value: str) -> Optional[str]:
    if value in spec._code_set:
        return None
    codes = spec.codes or ()
    if len(codes) <= 12:
        return f"{_show(value)} IS NOT ONE OF {' '.join(codes)}"
    return f"{_show(value)} IS NOT A VALID CODE"


_FORMAT_CHECKS: dict[str, Callable[[FieldSpec, str], Optional[str]]] = {
    "date": _check_date, "name": _check_name, "ori": _check_ori, "nic": _check_nic,
    "numeric": _check_numeric, "alpha": _check_alpha, "alnum": _check_alnum,
    "text": _check_text, "code": _check_code, "secret": _check_text,
}


# -- keys --------------------------------------------------------------------------------


@attrs.frozen
class Requirement:
    """One mandatory combination: any of ``alternatives`` (each a set of codes) must be present.

    ``when`` makes it conditional: ``("CNF", "P")`` means only when CNF/P is given.
    ``code`` is the switch code when it is not met (``.13.``, or ``.23.`` for PUR/ATN).
    """

    alternatives: tuple[tuple[str, ...], ...]
    code: str = ".13."
    when: Optional[tuple[str, str]] = None

    def met(self, present: Mapping[str, str]) -> bool:
        if self.when is not None and present.get(self.when[0]) != self.when[1]:
            return True
        for alternative in self.alternatives:
            for code in alternative:
                if code not in present:
                    break
            else:
                return True
        return False

    def describe(self) -> str:
        """``NAM AND DOB, OR SOC, OR FBI`` (the words of a .13. reject)."""
        text = ", OR ".join(" AND ".join(alt) for alt in self.alternatives)
        if self.when is not None:
            text += f" WITH {self.when[0]}/{self.when[1]}"
        return text

    @classmethod
    def from_text(cls, text: str) -> "Requirement":
        """``"NAM+DOB | SOC"``, or ``"TIM IF CNF/P"``."""
        when = None
        if " IF " in text:
            text, _, condition = text.partition(" IF ")
            code, slash, value = condition.strip().partition("/")
            if not slash or not code or not value:
                raise ValueError(f"condition {condition.strip()!r} must be CODE/value")
            when = (code, value)
        alternatives = tuple(tuple(part.strip() for part in alt.split("+")) for alt in text.split("|"))
        if any(not code for alt in alternatives for code in alt):
            raise ValueError(f"requirement {text!r} has an empty field code")
        return cls(alternatives, ".13.", when)


@attrs.frozen
class KeySpec:
    """What the catalogue says about one message key.

    The access rules read ``family``, ``file``, ``action``, ``category`` and
    ``level``; the router reads ``reply`` (the key answers come back with) and
    ``answers`` (for a reply key, the inquiry it answers).  ``fields`` maps each
    accepted MFC to its FieldSpec in catalogue order.
    """

    mke: str
    title: str
    family: str
    action: str
    category: str
    level: str
    file: Optional[str] = None
    fields: Mapping[str, FieldSpec] = attrs.field(factory=dict, converter=_proxy)
    positional: tuple[str, ...] = ()
    required: tuple[Requirement, ...] = ()
    reply: Optional[str] = None
    answers: Optional[str] = None
    free_text: bool = False
    fold_body: bool = True
    max_length: int = 4000
    max_dests: int = 5
    ori_required: bool = True
    example: str = ""
    source: str = ""
    # Codes whose value keeps its case (SON's PWD); empty for nearly every key.
    unfolded: frozenset[str] = attrs.field(default=frozenset(), eq=False)

    @property
    def nlets(self) -> bool:
        """Nlets grammar: destinations, optional control, TXT and a body."""
        return self.family == "nlets"


# -- files -------------------------------------------------------------------------------


@attrs.frozen
class SearchRule:
    """How an inquiry finds a file's records by number (``lems.files.index.RecordIndex``).

    ``numbers``: fields that identify a record by exact value (compared without
    case, spaces or hyphens).  ``narrowing``: a number narrowed by a companion
    field when the inquiry gives both (LIC by LIS: plates repeat across states).
    """

    numbers: tuple[str, ...] = ()
    narrowing: Mapping[str, str] = attrs.field(factory=dict, converter=_proxy)


@attrs.frozen
class FileSpec:
    """A record file: how a hit from it reads, what makes an entry a duplicate,
    how an inquiry finds its records and how a hit on one is confirmed.

    ``letter`` is the NIC letter of a file that takes entries; an inquiry-only
    data set has an ``id_letter`` instead (``record_letter`` is either).  ``rty``
    is the hit confirmation request type that confirms its records, with the
    identifiers such a request must carry (``identified_by``, any one alternative).
    """

    name: str
    title: str
    kind: str
    letter: Optional[str] = None
    duplicate: tuple[str, ...] = ()
    caution: Optional[str] = None
    id_letter: Optional[str] = None
    record_word: str = ""
    confirm_line: str = ""
    search: SearchRule = SearchRule()
    rty: Optional[str] = None
    identified_by: tuple[tuple[str, ...], ...] = ()

    @property
    def person(self) -> bool:
        return self.kind == "person"

    @property
    def record_letter(self) -> str:
        """The letter every record id of this file starts with."""
        return self.letter or self.id_letter or ""


# -- the whole directory ------------------------------------------------------------------


@attrs.frozen
class Catalogue:
    keys: Mapping[str, KeySpec] = attrs.field(converter=_proxy)
    files: Mapping[str, FileSpec] = attrs.field(converter=_proxy)
    fields: Mapping[str, FieldSpec] = attrs.field(converter=_proxy)
    codes: Mapping[str, tuple[str, ...]] = attrs.field(converter=_proxy)
    cautions: Mapping[str, str] = attrs.field(converter=_proxy)
    sources: tuple[str, ...] = ()
    # files.toml [search]: the rule of a file the catalogue does not know (records of a site's own file).
    search: SearchRule = SearchRule()
    # files.toml [maintenance] identifiers: fields that name the record in a modify, cancel, locate
    # or clear whose key does not say (a key says with a "NAM | OCA"-style requirement).
    identifiers: tuple[str, ...] = ()
    # files.toml [hit_confirmation] compared: identifiers a YQ gives that must equal the record's.
    compared: tuple[str, ...] = ()
    # Read once here, not per lookup: file name -> record letter, RTY -> file name.
    file_letters: Mapping[str, str] = attrs.field(init=False, eq=False, repr=False)
    _by_rty: Mapping[str, str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "file_letters", _proxy({f.name: f.record_letter for f in self.files.values()}))
        object.__setattr__(self, "_by_rty", _proxy({f.rty: f.name for f in self.files.values() if f.rty}))

    @property
    def nic_letters(self) -> dict[str, str]:
        """NIC file letter -> file name."""
        return {f.letter: f.name for f in self.files.values() if f.letter}

    def file_for_rty(self, rty: str) -> Optional[FileSpec]:
        """The file whose records a hit confirmation request of type ``rty`` confirms, or None."""
        name = self._by_rty.get(rty)
        return None if name is None else self.files[name]

    def search_rule(self, file: str) -> SearchRule:
        """How an inquiry finds records of ``file`` (the [search] default for a file not in files.toml)."""
        spec = self.files.get(file)
        return self.search if spec is None else spec.search

    @classmethod
    def load(cls, path: Path | str) -> "Catalogue":
        return _Loader(Path(path)).load()


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.codes: dict[str, tuple[str, ...]] = {}
        self.code_origin: dict[str, str] = {}
        self.raw_fields: dict[str, tuple[str, dict[str, Any]]] = {}
        self.raw_keys: dict[str, tuple[str, dict[str, Any]]] = {}
        self.tops: dict[str, dict[str, Any]] = {}

    def read(self, file: Path) -> dict[str, Any]:
        try:
            with file.open("rb") as f:
                return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogueError(f"{file.name}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise CatalogueError(f"{file.name}: cannot be read: {exc.strerror}") from None

    def load(self) -> Catalogue:
        if not self.path.is_dir():
            raise CatalogueError(f"{self.path}: not a directory")
        files_path = self.path / FILES_TOML
        if not files_path.is_file():
            raise CatalogueError(f"{FILES_TOML}: missing from {self.path}")
        files, cautions, shared = self.load_files(self.upgrade(self.read(files_path)))
        sources = sorted(p for p in self.path.glob("*.toml") if p.name != FILES_TOML)
        if not sources:
            raise CatalogueError(f"{self.path}: no message catalogue (*.toml besides {FILES_TOML})")
        for source in sources:
            self.gather(source.name, self.read(source))
        letters = tuple(sorted(f.letter for f in files.values() if f.letter))
        fields = {fid: self.make_field(fid, src, raw, letters) for fid, (src, raw) in self.raw_fields.items()}
        self.check_file_fields(shared, files, fields)
        keys = {mke: self.make_key(mke, fields, files) for mke in self.raw_keys}
        for mke, spec in keys.items():
            if spec.reply is not None:
                if spec.reply not in keys:
                    raise CatalogueError(f"{spec.source}: key {mke}: reply key {spec.reply} is not defined")
                keys[spec.reply] = attrs.evolve(keys[spec.reply], answers=mke)
        return Catalogue(keys, files, fields, self.codes, cautions,
                         (FILES_TOML,) + tuple(p.name for p in sources), **shared)

    # files.toml
    def upgrade(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A files.toml written before the file knowledge moved into it (none of
        [kind.*], [search], [maintenance], [hit_confirmation]) takes what it lacks from
        the files.toml lems ships, for the files both name: a home made by an older
        ``lems init`` keeps working, and says so once in the log."""
        if any(table in raw for table in _SINCE_0_2):
            return raw
        shipped_path = shipped_formats() / FILES_TOML
        if not shipped_path.is_file() or shipped_path.resolve() == (self.path / FILES_TOML).resolve():
            return raw
        shipped = self.read(shipped_path)
        out = {**raw, **{table: shipped[table] for table in _SINCE_0_2 if table in shipped}}
        files = {}
        for name, spec in raw.get("file", {}).items():
            theirs = shipped.get("file", {}).get(name, {}) if isinstance(spec, dict) else {}
            spec = dict(spec) if isinstance(spec, dict) else spec
            for key in _FILE_KEYS_SINCE_0_2:
                if isinstance(spec, dict) and key in theirs and key not in spec and not (
                        key == "id_letter" and "letter" in spec):
                    spec[key] = theirs[key]
            files[name] = spec
        out["file"] = files
        structlog.get_logger("lems.wire.catalogue").warning(
            "files.toml predates the file tables; using the shipped ones for what it lacks",
            home_file=str(self.path / FILES_TOML), shipped=str(shipped_path))
        return out

    def load_files(self, raw: dict[str, Any]) -> tuple[dict[str, FileSpec], dict[str, str], dict[str, Any]]:
        where = FILES_TOML
        unknown = set(raw) - {"file", "cautions", "kind", *_SHARED}
        if unknown:
            raise CatalogueError(f"{where}: unknown table(s) {', '.join(sorted(unknown))}")
        cautions = raw.get("cautions", {})
        if not isinstance(cautions, dict) or not all(isinstance(v, str) for v in cautions.values()):
            raise CatalogueError(f"{where}: [cautions] must map codes to lines of text")
        kinds = self.load_kinds(raw.get("kind"))
        shared = self.load_shared(raw)
        files: dict[str, FileSpec] = {}
        seen_letters: dict[str, str] = {}
        seen_rty: dict[str, str] = {}
        table = raw.get("file", {})
        if not isinstance(table, dict) or not table:
            raise CatalogueError(f"{where}: no [file.<name>] tables")
        for name, spec in table.items():
            at = f"{where}: file {name}"
            _check_table(at, spec, _FILE_KEYS)
            title, kind = spec.get("title"), spec.get("kind")
            if not isinstance(title, str) or not title:
                raise CatalogueError(f"{at}: title missing")
            if kind not in kinds:
                raise CatalogueError(f"{at}: kind must be one of {', '.join(kinds)} (a [kind.<name>] table)")
            letter, id_letter = spec.get("letter"), spec.get("id_letter")
            if (letter is None) == (id_letter is None):
                raise CatalogueError(f"{at}: give letter (the NIC letter of a file that takes entries) "
                                     f"or id_letter (an inquiry-only data set), one of them")
            for attr, value in (("letter", letter), ("id_letter", id_letter)):
                if value is None:
                    continue
                if not (isinstance(value, str) and len(value) == 1 and value.isupper() and value.isascii()):
                    raise CatalogueError(f"{at}: {attr} must be one capital letter")
                if value in seen_letters:
                    raise CatalogueError(f"{at}: letter {value} already belongs to file {seen_letters[value]}")
                seen_letters[value] = name
            duplicate = spec.get("duplicate", [])
            if not _is_str_list(duplicate):
                raise CatalogueError(f"{at}: duplicate must be a list of field codes")
            texts = {}
            for attr in ("caution", *_KIND_KEYS):
                value = spec.get(attr)
                if value is not None:
                    _check_reply_text(at, attr, value)
                texts[attr] = value if value is not None or attr == "caution" else kinds[kind][attr]
            search = self.search_rule(at, spec, shared["search"])
            rty, identified_by = self.confirmation(at, spec, letter)
            if rty is not None:
                if rty in seen_rty:
                    raise CatalogueError(f"{at}: rty {rty} already belongs to file {seen_rty[rty]}")
                seen_rty[rty] = name
            files[name] = FileSpec(name, title, kind, letter, tuple(duplicate), texts["caution"], id_letter,
                                   texts["record_word"], texts["confirm_line"], search, rty, identified_by)
        return files, cautions, shared

    def load_kinds(self, raw: Any) -> dict[str, dict[str, str]]:
        """[kind.<name>]: the reply wording of every file of that kind that does not word its own."""
        if not isinstance(raw, dict) or not raw:
            raise CatalogueError(f"{FILES_TOML}: no [kind.<name>] tables (person, property: record_word, confirm_line)")
        for name, spec in raw.items():
            at = f"{FILES_TOML}: kind {name}"
            _check_table(at, spec, _KIND_KEYS)
            for attr in sorted(_KIND_KEYS):
                if attr not in spec:
                    raise CatalogueError(f"{at}: {attr} missing")
                _check_reply_text(at, attr, spec[attr])
        return raw

    def load_shared(self, raw: dict[str, Any]) -> dict[str, Any]:
        """[search], [maintenance] and [hit_confirmation]: every attribute is needed."""
        out: dict[str, Any] = {}
        for table, attributes in _SHARED.items():
            spec = raw.get(table)
            if spec is None:
                raise CatalogueError(f"{FILES_TOML}: [{table}] missing ({', '.join(attributes)})")
            _check_table(f"{FILES_TOML}: [{table}]", spec, set(attributes))
            for attr, shape in attributes.items():
                at = f"{FILES_TOML}: [{table}] {attr}"
                if attr not in spec:
                    raise CatalogueError(f"{at} missing")
                if not _is_codes(spec[attr], shape):
                    raise CatalogueError(f"{at} must be " + ("a list of field codes" if shape is list
                                                             else "a table of field code = companion field code"))
        search = raw["search"]
        out["search"] = SearchRule(tuple(search["numbers"]), search["narrowing"])
        out["identifiers"] = tuple(raw["maintenance"]["identifiers"])
        out["compared"] = tuple(raw["hit_confirmation"]["compared"])
        return out

    @staticmethod
    def search_rule(at: str, spec: dict[str, Any], default: SearchRule) -> SearchRule:
        """A file's own numbers and narrowing come on top of [search]'s."""
        numbers, narrowing = spec.get("numbers", []), spec.get("narrowing", {})
        if not _is_codes(numbers, list):
            raise CatalogueError(f"{at}: numbers must be a list of field codes")
        if not _is_codes(narrowing, dict):
            raise CatalogueError(f"{at}: narrowing must be a table of field code = companion field code")
        if not numbers and not narrowing:
            return default
        return SearchRule(default.numbers + tuple(c for c in numbers if c not in default.numbers),
                          {**default.narrowing, **narrowing})

    @staticmethod
    def confirmation(at: str, spec: dict[str, Any], letter: Optional[str]) -> tuple[Optional[str], tuple]:
        rty, identified_by = spec.get("rty"), spec.get("identified_by")
        if rty is None:
            if identified_by is not None:
                raise CatalogueError(f"{at}: identified_by is only for a file with an rty")
            return None, ()
        if not (isinstance(rty, str) and _RTY.fullmatch(rty)):
            raise CatalogueError(f"{at}: rty must be two capital letters")
        if letter is None:
            raise CatalogueError(f"{at}: rty {rty} needs a NIC letter (a hit is confirmed by its NIC)")
        if (not isinstance(identified_by, list) or not identified_by
                or not all(_is_str_list(alt) and alt for alt in identified_by)):
            raise CatalogueError(f"{at}: rty {rty} needs identified_by, a list of field code lists "
                                 f'(any one alternative), e.g. [["VIN"], ["LIC"]]')
        return rty, tuple(tuple(alt) for alt in identified_by)

    @staticmethod
    def check_file_fields(shared: dict[str, Any], files: dict[str, FileSpec], fields: dict[str, FieldSpec]) -> None:
        """Every field code files.toml names is a defined field; every rty is a code of field RTY."""
        codes = {f.code for f in fields.values()}

        def check(at: str, what: str, named: Any) -> None:
            for code in named:
                if code not in codes:
                    raise CatalogueError(f"{FILES_TOML}: {at}: {what} field {code} is not a defined field")

        check("[search]", "numbers", shared["search"].numbers)
        check("[search]", "narrowing", [c for pair in shared["search"].narrowing.items() for c in pair])
        check("[maintenance]", "identifiers", shared["identifiers"])
        check("[hit_confirmation]", "compared", shared["compared"])
        rty_codes = {c for f in fields.values() if f.code == "RTY" and f.codes for c in f.codes}
        for name, spec in files.items():
            at = f"file {name}"
            check(at, "duplicate", spec.duplicate)
            check(at, "numbers", spec.search.numbers)
            check(at, "narrowing", [c for pair in spec.search.narrowing.items() for c in pair])
            check(at, "identified_by", [c for alt in spec.identified_by for c in alt])
            if spec.rty is not None and rty_codes and spec.rty not in rty_codes:
                raise CatalogueError(f"{FILES_TOML}: {at}: rty {spec.rty} is not a code of field RTY")

    # one family catalogue: collect its code lists, fields and keys
    def gather(self, source: str, raw: dict[str, Any]) -> None:
        extra = set(raw) - _TOP_KEYS
        if extra:
            raise CatalogueError(f"{source}: unknown attribute(s) {', '.join(sorted(extra))}")
        family = raw.get("family")
        if family not in FAMILIES:
            raise CatalogueError(f"{source}: family must be one of {', '.join(FAMILIES)}")
        levels = raw.get("levels", {})
        if not isinstance(levels, dict) or any(a not in ACTIONS or lv not in LEVELS for a, lv in levels.items()):
            raise CatalogueError(f"{source}: [levels] must map actions to {', '.join(LEVELS)}")
        self.tops[source] = raw
        for name, values in raw.get("codes", {}).items():
            if not _is_str_list(values) or not values:
                raise CatalogueError(f"{source}: code list {name} must be a non-empty list of strings")
            if name in self.codes:
                raise CatalogueError(f"{source}: code list {name} is already defined in {self.code_origin[name]}")
            self.codes[name], self.code_origin[name] = tuple(values), source
        for fid, spec in raw.get("field", {}).items():
            if fid in self.raw_fields:
                raise CatalogueError(f"{source}: field {fid} is already defined in {self.raw_fields[fid][0]}")
            if not isinstance(spec, dict):
                raise CatalogueError(f"{source}: field {fid} must be a table")
            self.raw_fields[fid] = (source, spec)
        for mke, spec in raw.get("key", {}).items():
            if mke in self.raw_keys:
                raise CatalogueError(f"{source}: key {mke} is already defined in {self.raw_keys[mke][0]}")
            if not (mke.isalpha() and mke.isupper() and mke.isascii() and 2 <= len(mke) <= 5):
                raise CatalogueError(f"{source}: key {mke!r} must be 2 to 5 capital letters")
            if not isinstance(spec, dict):
                raise CatalogueError(f"{source}: key {mke} must be a table")
            self.raw_keys[mke] = (source, spec)

    def make_field(self, fid: str, source: str, raw: dict[str, Any], letters: tuple[str, ...]) -> FieldSpec:
        at = f"{source}: field {fid}"
        extra = set(raw) - _FIELD_KEYS
        if extra:
            raise CatalogueError(f"{at}: unknown attribute(s) {', '.join(sorted(extra))}")
        code = raw.get("code", fid.split("-", 1)[0])
        if not (isinstance(code, str) and code.isalpha() and code.isupper() and code.isascii()):
            raise CatalogueError(f"{at}: field code {code!r} must be capital letters")
        fmt = raw.get("format")
        if fmt not in FORMATS:
            raise CatalogueError(f"{at}: format must be one of {', '.join(FORMATS)}")
        codes: Optional[tuple[str, ...]] = None
        if fmt == "code":
            if "codes" in raw and "codelist" in raw:
                raise CatalogueError(f"{at}: give codes or codelist, not both")
            if "codelist" in raw:
                if raw["codelist"] not in self.codes:
                    raise CatalogueError(f"{at}: code list {raw['codelist']!r} is not defined")
                codes = self.codes[raw["codelist"]]
            elif _is_str_list(raw.get("codes")) and raw["codes"]:
                codes = tuple(raw["codes"])
            else:
                raise CatalogueError(f"{at}: format code needs codes or codelist")
        elif "codes" in raw or "codelist" in raw:
            raise CatalogueError(f"{at}: codes are only for format code")
        elif fmt == "nic":
            codes = letters
        natural_min, natural_max = _NATURAL_LENGTH[fmt]
        if fmt == "code":
            assert codes is not None
            natural_min, natural_max = min(map(len, codes)), max(map(len, codes))
        lo, hi = raw.get("min", natural_min), raw.get("max", natural_max)
        if hi is None:
            raise CatalogueError(f"{at}: format {fmt} needs max (the longest value)")
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
            raise CatalogueError(f"{at}: min and max must be whole numbers with 1 <= min <= max")
        pattern = raw.get("pattern")
        regex = None
        if pattern is not None:
            try:
                regex = re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise CatalogueError(f"{at}: pattern {pattern!r} is not a regular expression: {exc}") from None
        reject = raw.get("reject")
        if reject is not None and reject not in REJECT_CODES:
            raise CatalogueError(f"{at}: reject must be one of {', '.join(REJECT_CODES)}")
        flags = {}
        for flag, default in (("repeat", False), ("fold", fmt != "secret"), ("criteria", True)):
            value = raw.get(flag, default)
            if not isinstance(value, bool):
                raise CatalogueError(f"{at}: {flag} must be true or false")
            flags[flag] = value
        title = raw.get("title", fid)
        if not isinstance(title, str):
            raise CatalogueError(f"{at}: title must be text")
        return FieldSpec(fid, code, title, fmt, lo, hi, codes, pattern, flags["repeat"], reject,
                         flags["fold"], flags["criteria"], frozenset(codes or ()), regex)

    def resolved_raw(self, mke: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
        """The key's attributes with ``like`` and ``add`` applied (not yet defaults)."""
        source, raw = self.raw_keys[mke]
        extra = set(raw) - _KEY_KEYS
        if extra:
            raise CatalogueError(f"{source}: key {mke}: unknown attribute(s) {', '.join(sorted(extra))}")
        out: dict[str, Any] = {}
        base = raw.get("like")
        if base is not None:
            if base not in self.raw_keys:
                raise CatalogueError(f"{source}: key {mke}: like names undefined key {base!r}")
            if base in chain or base == mke:
                raise CatalogueError(f"{source}: key {mke}: like makes a loop ({' -> '.join(chain + (mke, base))})")
            out = {k: v for k, v in self.resolved_raw(base, chain + (mke,)).items() if k not in ("title", "example")}
        out.update({k: v for k, v in raw.items() if k not in ("like", "add")})
        if "add" in raw:
            if not _is_str_list(raw["add"]):
                raise CatalogueError(f"{source}: key {mke}: add must be a list of field ids")
            out["fields"] = list(out.get("fields", [])) + list(raw["add"])
        return out

    def make_key(self, mke: str, fields: dict[str, FieldSpec], files: dict[str, FileSpec]) -> KeySpec:
        source = self.raw_keys[mke][0]
        top = self.tops[source]
        at = f"{source}: key {mke}"
        raw = self.resolved_raw(mke)
        family = top["family"]
        action = raw.get("action")
        if action not in ACTIONS:
            raise CatalogueError(f"{at}: action must be one of {', '.join(ACTIONS)}")
        category = raw.get("category", top.get("category"))
        if category not in CATEGORIES:
            raise CatalogueError(f"{at}: category must be one of {', '.join(CATEGORIES)}")
        level = raw.get("level", top.get("levels", {}).get(action))
        if level not in LEVELS:
            raise CatalogueError(f"{at}: level must be one of {', '.join(LEVELS)} (or set [levels] for {action})")
        file = raw.get("file")
        if file is not None and file not in files:
            raise CatalogueError(f"{at}: file {file!r} is not in {FILES_TOML}")
        if file is not None and action in _MAINTENANCE and files[file].letter is None:
            raise CatalogueError(f"{at}: file {file} has no NIC letter in {FILES_TOML} and takes no {action}")
        title = raw.get("title")
        if not isinstance(title, str) or not title:
            raise CatalogueError(f"{at}: title missing")
        field_ids = raw.get("fields", [])
        if not _is_str_list(field_ids):
            raise CatalogueError(f"{at}: fields must be a list of field ids")
        by_code: dict[str, FieldSpec] = {}
        for fid in field_ids:
            if fid not in fields:
                raise CatalogueError(f"{at}: field {fid!r} is not defined")
            spec = fields[fid]
            if spec.code in by_code:
                raise CatalogueError(f"{at}: field code {spec.code} is listed twice ({by_code[spec.code].id}, {fid})")
            by_code[spec.code] = spec
        free_text = raw.get("free_text", False)
        fold_body = raw.get("fold_body", True)
        if not isinstance(free_text, bool) or not isinstance(fold_body, bool):
            raise CatalogueError(f"{at}: free_text and fold_body must be true or false")
        if free_text and (by_code or family != "nlets"):
            raise CatalogueError(f"{at}: a free-text key is an Nlets key without fields")
        positional: list[str] = []
        for fid in raw.get("positional", []):
            spec = fields.get(fid) or by_code.get(fid)
            if spec is None or by_code.get(spec.code) is not spec:
                raise CatalogueError(f"{at}: positional field {fid!r} is not one of the key's fields")
            positional.append(spec.code)
        if positional and (action != "enter" or family == "nlets"):
            raise CatalogueError(f"{at}: only NCIC-style entry keys take positional fields")
        if len(set(positional)) != len(positional):
            raise CatalogueError(f"{at}: positional lists a field twice")
        required = []
        texts = raw.get("required", [])
        if not _is_str_list(texts):
            raise CatalogueError(f"{at}: required must be a list of strings")
        for text in texts:
            try:
                req = Requirement.from_text(text)
            except ValueError as exc:
                raise CatalogueError(f"{at}: {exc}") from None
            named = {c for alt in req.alternatives for c in alt} | ({req.when[0]} if req.when else set())
            unknown = named - set(by_code)
            if unknown:
                raise CatalogueError(f"{at}: required names {', '.join(sorted(unknown))}, not among the key's fields")
            # PUR and ATN on criminal history keys: their absence is .23., not .13.
            codes = {by_code[c].missing_code for alt in req.alternatives for c in alt}
            required.append(attrs.evolve(req, code=codes.pop() if len(codes) == 1 else ".13."))
        reply = raw.get("reply")
        if reply is not None and not isinstance(reply, str):
            raise CatalogueError(f"{at}: reply must be a key")
        ints = {}
        for name in ("max_length", "max_dests"):
            value = raw.get(name, top.get(name, 4000 if name == "max_length" else 5))
            if not isinstance(value, int) or value < 1:
                raise CatalogueError(f"{at}: {name} must be a positive whole number")
            ints[name] = value
        ori = raw.get("ori", "required")
        if ori not in ("required", "optional"):
            raise CatalogueError(f"{at}: ori must be required or optional")
        example = raw.get("example", "")
        if not isinstance(example, str):
            raise CatalogueError(f"{at}: example must be text")
        return KeySpec(mke, title, family, action, category, level, file, by_code, tuple(positional),
                       tuple(required), reply, None, free_text, fold_body, ints["max_length"], ints["max_dests"],
                       ori == "required", example, source,
                       frozenset(code for code, spec in by_code.items() if not spec.fold))


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_table(at: str, spec: Any, allowed: set[str]) -> None:
    if not isinstance(spec, dict):
        raise CatalogueError(f"{at}: must be a table")
    extra = set(spec) - allowed
    if extra:
        raise CatalogueError(f"{at}: unknown attribute(s) {', '.join(sorted(extra))}")


def _is_codes(value: Any, shape: type) -> bool:
    """A list of field codes, or a table of field code = field code."""
    if shape is list:
        return _is_str_list(value)
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
