"""The message catalogues (formats/*.toml) as frozen values.

A catalogue directory holds ``files.toml`` (the record files: NIC letter, hit
title, person or property, duplicate key, caution wording) and one TOML file per
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
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

import attrs

FAMILIES = ("ncic", "nlets", "leds", "control")
ACTIONS = ("inquiry", "enter", "modify", "cancel", "locate", "clear", "admin", "reply", "control")
CATEGORIES = ("investigative", "criminal-history", "motor-vehicle", "corrections", "prohibited",
              "admin", "status", "hit-confirmation", "control")
LEVELS = ("inquiry", "entry", "full")
KINDS = ("person", "property")
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
_FILE_KEYS = {"letter", "title", "kind", "duplicate", "caution"}
_TOP_KEYS = {"family", "category", "max_length", "max_dests", "levels", "codes", "field", "key"}


class CatalogueError(Exception):
    """formats/ is broken; the message names the file and the problem."""


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
class FileSpec:
    """A record file: how a hit from it reads and what makes an entry a duplicate."""

    name: str
    title: str
    kind: str
    letter: Optional[str] = None
    duplicate: tuple[str, ...] = ()
    caution: Optional[str] = None

    @property
    def person(self) -> bool:
        return self.kind == "person"

    @property
    def record_word(self) -> str:
        """``WANT`` (person files) or ``RECORD`` (property) in a no-record line."""
        return "WANT" if self.person else "RECORD"

    @property
    def confirm_line(self) -> str:
        if self.person:
            return "IMMED CONFIRM WARRANT AND EXTRADITION WITH ORI"
        return "IMMED CONFIRM RECORD WITH ORI"


# -- the whole directory ------------------------------------------------------------------


@attrs.frozen
class Catalogue:
    keys: Mapping[str, KeySpec] = attrs.field(converter=_proxy)
    files: Mapping[str, FileSpec] = attrs.field(converter=_proxy)
    fields: Mapping[str, FieldSpec] = attrs.field(converter=_proxy)
    codes: Mapping[str, tuple[str, ...]] = attrs.field(converter=_proxy)
    cautions: Mapping[str, str] = attrs.field(converter=_proxy)
    sources: tuple[str, ...] = ()

    @property
    def nic_letters(self) -> dict[str, str]:
        """NIC file letter -> file name."""
        return {f.letter: f.name for f in self.files.values() if f.letter}

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
        files, cautions = self.load_files(self.read(files_path))
        sources = sorted(p for p in self.path.glob("*.toml") if p.name != FILES_TOML)
        if not sources:
            raise CatalogueError(f"{self.path}: no message catalogue (*.toml besides {FILES_TOML})")
        for source in sources:
            self.gather(source.name, self.read(source))
        letters = tuple(sorted(f.letter for f in files.values() if f.letter))
        fields = {fid: self.make_field(fid, src, raw, letters) for fid, (src, raw) in self.raw_fields.items()}
        for name, spec in files.items():
            for code in spec.duplicate:
                if not any(f.code == code for f in fields.values()):
                    raise CatalogueError(f"{FILES_TOML}: file {name}: duplicate field {code} is not a defined field")
        keys = {mke: self.make_key(mke, fields, files) for mke in self.raw_keys}
        for mke, spec in keys.items():
            if spec.reply is not None:
                if spec.reply not in keys:
                    raise CatalogueError(f"{spec.source}: key {mke}: reply key {spec.reply} is not defined")
                keys[spec.reply] = attrs.evolve(keys[spec.reply], answers=mke)
        return Catalogue(keys, files, fields, self.codes, cautions,
                         (FILES_TOML,) + tuple(p.name for p in sources))

    # files.toml
    def load_files(self, raw: dict[str, Any]) -> tuple[dict[str, FileSpec], dict[str, str]]:
        where = FILES_TOML
        unknown = set(raw) - {"file", "cautions"}
        if unknown:
            raise CatalogueError(f"{where}: unknown table(s) {', '.join(sorted(unknown))}")
        cautions = raw.get("cautions", {})
        if not isinstance(cautions, dict) or not all(isinstance(v, str) for v in cautions.values()):
            raise CatalogueError(f"{where}: [cautions] must map codes to lines of text")
        files: dict[str, FileSpec] = {}
        seen_letters: dict[str, str] = {}
        table = raw.get("file", {})
        if not isinstance(table, dict) or not table:
            raise CatalogueError(f"{where}: no [file.<name>] tables")
        for name, spec in table.items():
            at = f"{where}: file {name}"
            if not isinstance(spec, dict):
                raise CatalogueError(f"{at}: must be a table")
            extra = set(spec) - _FILE_KEYS
            if extra:
                raise CatalogueError(f"{at}: unknown attribute(s) {', '.join(sorted(extra))}")
            title, kind = spec.get("title"), spec.get("kind")
            if not isinstance(title, str) or not title:
                raise CatalogueError(f"{at}: title missing")
            if kind not in KINDS:
                raise CatalogueError(f"{at}: kind must be one of {', '.join(KINDS)}")
            letter = spec.get("letter")
            if letter is not None:
                if not (isinstance(letter, str) and len(letter) == 1 and letter.isupper() and letter.isascii()):
                    raise CatalogueError(f"{at}: letter must be one capital letter")
                if letter in seen_letters:
                    raise CatalogueError(f"{at}: letter {letter} already belongs to file {seen_letters[letter]}")
                seen_letters[letter] = name
            duplicate = spec.get("duplicate", [])
            if not _is_str_list(duplicate):
                raise CatalogueError(f"{at}: duplicate must be a list of field codes")
            caution = spec.get("caution")
            if caution is not None and not isinstance(caution, str):
                raise CatalogueError(f"{at}: caution must be text")
            files[name] = FileSpec(name, title, kind, letter, tuple(duplicate), caution)
        return files, cautions

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
