"""Who may connect: agencies, user agreements, terminals and operators.

The registry is data in a home's terminals/ directory (agencies.toml,
terminals.toml, operators.toml).  It is loaded into frozen values; a change (a
new fingerprint, a revocation) makes a new Registry and is written back
atomically to the file that owns it.

The files are the administrators' as much as the switch's, so a write changes
only what changed: the file is edited in place with tomlkit (comments, order,
spacing and keys the switch does not know stay as written), entries the file
lacks are appended, and the result must load back to the same entries before it
replaces the file.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
import tomlkit
from tomlkit.items import AoT, Table

AGENCY_TYPES = ("criminal-justice", "service", "non-criminal-justice")
TERMINAL_TYPES = ("workstation", "mobile", "dispatch", "receive-only", "interface")
LEVELS = ("inquiry", "entry", "full")
STATUSES = ("active", "suspended", "revoked")
# An agency on remove status takes no traffic and nothing is queued for it (.04.).
AGENCY_STATUSES = STATUSES + ("remove",)


class RegistryError(Exception):
    """A registry file is wrong; the message names the file and the entry."""


class TrainingError(RegistryError):
    """A training record refused (PROTOCOL.md 11); the message says why, in the switch's words."""


LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
TRAINING_EVENTS = ("issued", "completed")


def _date(value: Any, where: str) -> Optional[dt.date]:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RegistryError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _iso(value: Optional[dt.date]) -> str:
    return value.isoformat() if value else ""


@attrs.frozen
class Agreement:
    """The agency's user agreement with the state (OAR 257-015)."""

    signed: Optional[dt.date] = None
    review_due: Optional[dt.date] = None
    # Termination notice given: the agreement ends 30 days after it.
    notice: Optional[dt.date] = None
    # The signing official left: the agreement lapses 30 days later.
    official_left: Optional[dt.date] = None
    # What the agreement grants: criminal-history, firearms, prohibited-entry ...
    grants: tuple[str, ...] = ()
    # Oregon motor vehicle and driver purposes (letters A-I).
    dmv_purposes: str = ""
    # Non-criminal-justice agencies: the purposes their administrative messages may serve.
    approved_purpose: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "Agreement":
        return cls(
            signed=_date(raw.get("signed"), where),
            review_due=_date(raw.get("review_due"), where),
            notice=_date(raw.get("notice"), where),
            official_left=_date(raw.get("official_left"), where),
            grants=tuple(raw.get("grants", ())),
            dmv_purposes=str(raw.get("dmv_purposes", "")).upper(),
            approved_purpose=str(raw.get("approved_purpose", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "signed": _iso(self.signed), "review_due": _iso(self.review_due),
            "notice": _iso(self.notice), "official_left": _iso(self.official_left),
            "grants": list(self.grants), "dmv_purposes": self.dmv_purposes,
            "approved_purpose": self.approved_purpose,
        }


@attrs.frozen
class Agency:
    ori: str
    name: str
    type: str
    state: str = "OR"
    status: str = "active"
    control: bool = False
    # ORIs this agency serves under a management control agreement.
    serves: tuple[str, ...] = ()
    agreement: Agreement = Agreement()

    @property
    def criminal_justice(self) -> bool:
        return self.type == "criminal-justice"

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "Agency":
        try:
            agency = cls(
                ori=str(raw["ori"]).upper(), name=str(raw["name"]), type=str(raw["type"]),
                state=str(raw.get("state", raw["ori"][:2])).upper(), status=str(raw.get("status", "active")),
                control=bool(raw.get("control", False)), serves=tuple(s.upper() for s in raw.get("serves", ())),
                agreement=Agreement.from_dict(raw.get("agreement", {}), where),
            )
        except KeyError as exc:
            raise RegistryError(f"{where}: missing {exc.args[0]}") from None
        if agency.type not in AGENCY_TYPES:
            raise RegistryError(f"{where}: type must be one of {AGENCY_TYPES}")
        if agency.status not in AGENCY_STATUSES:
            raise RegistryError(f"{where}: status must be one of {AGENCY_STATUSES}")
        if len(agency.ori) != 9 or not agency.ori.isalnum():
            raise RegistryError(f"{where}: ORI {agency.ori!r} must be 9 letters or digits")
        return agency

    def to_dict(self) -> dict[str, Any]:
        return {"ori": self.ori, "name": self.name, "type": self.type, "state": self.state,
                "status": self.status, "control": self.control, "serves": list(self.serves),
                "agreement": self.agreement.to_dict()}


@attrs.frozen
class Terminal:
    id: str
    ori: str
    type: str
    ack: bool = False
    status: str = "active"
    # SHA-256 of the DER certificate the terminal must present, lowercase hex.
    fingerprint: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "Terminal":
        try:
            term = cls(id=str(raw["id"]).upper(), ori=str(raw["ori"]).upper(), type=str(raw["type"]),
                       ack=bool(raw.get("ack", False)), status=str(raw.get("status", "active")),
                       fingerprint=str(raw.get("fingerprint", "")).lower())
        except KeyError as exc:
            raise RegistryError(f"{where}: missing {exc.args[0]}") from None
        if term.type not in TERMINAL_TYPES:
            raise RegistryError(f"{where}: type must be one of {TERMINAL_TYPES}")
        if term.status not in STATUSES:
            raise RegistryError(f"{where}: status must be one of {STATUSES}")
        return term

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ori": self.ori, "type": self.type, "ack": self.ack,
                "status": self.status, "fingerprint": self.fingerprint}


@attrs.frozen
class Operator:
    id: str
    ori: str
    level: str
    password: str  # scrypt$... (lems.base.credentials); never the password itself
    certified: Optional[dt.date] = None
    guide_issued: Optional[dt.date] = None
    background_check: Optional[dt.date] = None
    totp: str = ""
    status: str = "active"
    # The agency's LEDS representative (PROTOCOL.md 11): trained to the agency's highest
    # level before anyone else in the agency is issued a training guide.
    representative: bool = False

    # Training (PROTOCOL.md 11): ``guide_issued`` is the day the training guide was issued,
    # ``certified`` the day training was completed (the certification runs two years from
    # it, and a later completion, the recertification, renews it), ``level`` the level
    # trained to.

    @property
    def in_training(self) -> bool:
        """A guide was issued and the training it began was never completed."""
        return self.guide_issued is not None and self.certified is None

    @property
    def trained(self) -> bool:
        return self.certified is not None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "Operator":
        try:
            op = cls(id=str(raw["id"]).upper(), ori=str(raw["ori"]).upper(), level=str(raw["level"]),
                     password=str(raw["password"]), certified=_date(raw.get("certified"), where),
                     guide_issued=_date(raw.get("guide_issued"), where),
                     background_check=_date(raw.get("background_check"), where),
                     totp=str(raw.get("totp", "")), status=str(raw.get("status", "active")),
                     representative=raw.get("representative", False))
        except KeyError as exc:
            raise RegistryError(f"{where}: missing {exc.args[0]}") from None
        if op.level not in LEVELS:
            raise RegistryError(f"{where}: level must be one of {LEVELS}")
        if not isinstance(op.representative, bool):
            raise RegistryError(f"{where}: representative must be true or false")
        return op

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ori": self.ori, "level": self.level, "password": self.password,
                "certified": _iso(self.certified), "guide_issued": _iso(self.guide_issued),
                "background_check": _iso(self.background_check), "totp": self.totp, "status": self.status,
                "representative": self.representative}


FILES = {"agency": "agencies.toml", "terminal": "terminals.toml", "operator": "operators.toml"}
HEADERS = {
    "agency": "# Agencies and their user agreements. Dates are YYYY-MM-DD.",
    "terminal": "# Terminals. fingerprint is the SHA-256 of the certificate (DER) the terminal presents;\n"
                "# `lems ca issue` and `lems init` write it.",
    "operator": "# Operators. password is an scrypt hash (lems.base.credentials); totp a base32 RFC 6238 secret.\n"
                "# guide_issued / certified: training guide issued / training completed (PROTOCOL.md 11).",
}


@attrs.frozen
class Registry:
    directory: Path
    agencies: dict[str, Agency]
    terminals: dict[str, Terminal]
    operators: dict[str, Operator]
    by_fingerprint: dict[str, Terminal] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "by_fingerprint",
                           {t.fingerprint: t for t in self.terminals.values() if t.fingerprint})

    @classmethod
    def load(cls, directory: Path) -> "Registry":
        directory = Path(directory)
        tables: dict[str, list[dict[str, Any]]] = {}
        for kind, name in FILES.items():
            path = directory / name
            try:
                with path.open("rb") as f:
                    tables[kind] = tomllib.load(f).get(kind, [])
            except FileNotFoundError:
                raise RegistryError(f"{path}: no such file") from None
            except tomllib.TOMLDecodeError as exc:
                raise RegistryError(f"{path}: {exc}") from None

        def build(kind: str, maker: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for i, raw in enumerate(tables[kind], 1):
                item = maker(raw, f"{directory / FILES[kind]}: {kind} #{i}")
                key = getattr(item, "ori" if kind == "agency" else "id")
                if key in out:
                    raise RegistryError(f"{directory / FILES[kind]}: {key} is listed twice")
                out[key] = item
            return out

        registry = cls(directory, build("agency", Agency.from_dict), build("terminal", Terminal.from_dict),
                       build("operator", Operator.from_dict))
        registry.check()
        return registry

    def check(self) -> None:
        """Cross-references: every terminal and operator belongs to a known agency."""
        for t in self.terminals.values():
            if t.ori not in self.agencies:
                raise RegistryError(f"terminal {t.id}: unknown agency {t.ori}")
        for o in self.operators.values():
            if o.ori not in self.agencies:
                raise RegistryError(f"operator {o.id}: unknown agency {o.ori}")
        for a in self.agencies.values():
            for served in a.serves:
                if served not in self.agencies:
                    raise RegistryError(f"agency {a.ori}: serves unknown agency {served}")
        representatives: dict[str, str] = {}
        for o in self.operators.values():
            if o.representative:
                if o.ori in representatives:
                    raise RegistryError(f"agency {o.ori}: two LEDS representatives, "
                                        f"{representatives[o.ori]} and {o.id} (one only)")
                representatives[o.ori] = o.id
        seen: dict[str, str] = {}
        for t in self.terminals.values():
            if t.fingerprint and t.fingerprint in seen:
                raise RegistryError(f"terminals {seen[t.fingerprint]} and {t.id} share one certificate")
            seen[t.fingerprint] = t.id

    # -- questions -------------------------------------------------------

    def agency(self, ori: str) -> Optional[Agency]:
        return self.agencies.get(ori)

    def terminal_for(self, fingerprint: str) -> Optional[Terminal]:
        return self.by_fingerprint.get(fingerprint)

    def oris_for(self, terminal: Terminal) -> frozenset[str]:
        """ORIs a terminal may send for: its agency's own, plus those it serves by agreement."""
        agency = self.agencies[terminal.ori]
        return frozenset((agency.ori, *agency.serves))

    def terminals_of(self, ori: str) -> list[Terminal]:
        return [t for t in self.terminals.values() if t.ori == ori]

    def agency_name(self, ori: str) -> str:
        agency = self.agencies.get(ori)
        return agency.name if agency else ori

    def operators_of(self, ori: str) -> list[Operator]:
        return [o for o in self.operators.values() if o.ori == ori]

    def representative(self, ori: str) -> Optional[Operator]:
        """The agency's LEDS representative (registry ``representative = true``), or None."""
        return next((o for o in self.operators.values() if o.ori == ori and o.representative), None)

    def guide_problem(self, operator: Operator, level: str) -> Optional[str]:
        """Why a training guide at ``level`` may not be issued to ``operator`` now (None when it may).

        The LEDS representative rule (OAR 257-015-0050 (5), PROTOCOL.md 11): the agency's
        representative must hold the highest training level of anyone in the agency
        (counting the level this guide is for) before a guide is issued to anyone else.
        """
        ori = operator.ori
        others = [o for o in self.operators_of(ori) if o.id != operator.id]
        if operator.representative:
            higher = [o for o in others if LEVEL_RANK[o.level] > LEVEL_RANK[level]]
            if higher:
                return (f"LEDS REPRESENTATIVE {operator.id} MUST HOLD THE HIGHEST TRAINING LEVEL IN {ori}: "
                        f"{higher[0].id} IS {higher[0].level.upper()}")
            return None
        rep = self.representative(ori)
        if rep is None:
            return (f"AGENCY {ori} HAS NO LEDS REPRESENTATIVE - A TRAINING GUIDE CAN BE ISSUED TO ITS "
                    f"REPRESENTATIVE ONLY")
        if not rep.trained:
            return (f"LEDS REPRESENTATIVE {rep.id} OF {ori} HAS NOT COMPLETED TRAINING - NO GUIDE CAN BE "
                    f"ISSUED TO ANYONE ELSE IN THE AGENCY")
        highest = max([LEVEL_RANK[level], *(LEVEL_RANK[o.level] for o in others if o.id != rep.id)])
        if LEVEL_RANK[rep.level] < highest:
            return (f"LEDS REPRESENTATIVE {rep.id} OF {ori} IS TRAINED TO {rep.level.upper()} AND MUST FIRST "
                    f"HOLD {LEVELS[highest].upper()}, THE HIGHEST LEVEL IN THE AGENCY")
        return None

    def with_training(self, operator_id: str, event: str, day: dt.date, level: Optional[str] = None,
                      today: Optional[dt.date] = None) -> "Registry":
        """Record a training guide issued or a training completed (``lems operator training``,
        the console's ``training``); TrainingError says why it cannot be."""
        operator = self.operators.get(operator_id.upper())
        if operator is None:
            raise TrainingError(f"NO OPERATOR {operator_id.upper()}")
        level = (level or operator.level).lower()
        if level not in LEVELS:
            raise TrainingError(f"LEVEL MUST BE ONE OF {', '.join(l.upper() for l in LEVELS)}")
        if event not in TRAINING_EVENTS:
            raise TrainingError(f"SAY WHAT HAPPENED: {' OR '.join(e.upper() for e in TRAINING_EVENTS)}")
        if today is not None and day > today:
            raise TrainingError(f"{day.isoformat()} IS IN THE FUTURE (SWITCH DATE {today.isoformat()})")
        if event == "issued":
            problem = self.guide_problem(operator, level)
            if problem:
                raise TrainingError(problem)
            # A first guide sets the level trained to; an operator already trained keeps the
            # level it holds until the new training is completed.
            new = attrs.evolve(operator, guide_issued=day, level=level if not operator.trained else operator.level)
        else:
            if operator.guide_issued is None:
                raise TrainingError(f"NO TRAINING GUIDE ISSUED TO {operator.id} - RECORD THE GUIDE FIRST (issued)")
            if day < operator.guide_issued:
                raise TrainingError(f"{day.isoformat()} IS BEFORE THE GUIDE WAS ISSUED "
                                    f"({operator.guide_issued.isoformat()})")
            if LEVEL_RANK[level] > LEVEL_RANK[operator.level]:
                problem = self.guide_problem(operator, level)
                if problem:
                    raise TrainingError(problem)
            elif operator.representative:
                problem = self.guide_problem(operator, level)
                if problem:
                    raise TrainingError(problem)
            new = attrs.evolve(operator, certified=day, level=level)
        return self.with_operator(new)

    # -- changes (each writes the file that owns it) ----------------------

    def with_terminal(self, terminal: Terminal) -> "Registry":
        if terminal.ori not in self.agencies:
            raise RegistryError(f"terminal {terminal.id}: unknown agency {terminal.ori}")
        new = attrs.evolve(self, terminals={**self.terminals, terminal.id: terminal})
        new.check()
        new.save("terminal")
        return new

    def with_agency(self, agency: Agency) -> "Registry":
        new = attrs.evolve(self, agencies={**self.agencies, agency.ori: agency})
        new.check()
        new.save("agency")
        return new

    def with_operator(self, operator: Operator) -> "Registry":
        if operator.ori not in self.agencies:
            raise RegistryError(f"operator {operator.id}: unknown agency {operator.ori}")
        new = attrs.evolve(self, operators={**self.operators, operator.id: operator})
        new.check()
        new.save("operator")
        return new

    def save(self, kind: str) -> None:
        """Write this registry's entries of ``kind`` to the file that owns them, keeping its layout."""
        path = self.directory / FILES[kind]
        items: dict[str, Any] = {"agency": self.agencies, "terminal": self.terminals,
                                 "operator": self.operators}[kind]
        try:
            doc = tomlkit.parse(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = tomlkit.parse(HEADERS[kind] + "\n")
        _merge(doc, kind, items)
        text = tomlkit.dumps(doc)
        if _entries(tomllib.loads(text), kind, path) != items:
            raise RegistryError(f"{path}: the rewritten file would not load back to the same {kind} entries")
        write_atomically(path, text)


MAKERS: dict[str, Callable[[dict[str, Any], str], Any]] = {
    "agency": Agency.from_dict, "terminal": Terminal.from_dict, "operator": Operator.from_dict}
KEYS = {"agency": "ori", "terminal": "id", "operator": "id"}


def _entries(raw: dict[str, Any], kind: str, path: Path) -> dict[str, Any]:
    out = {}
    for i, entry in enumerate(raw.get(kind, []), 1):
        item = MAKERS[kind](entry, f"{path}: {kind} #{i}")
        out[getattr(item, KEYS[kind])] = item
    return out


def _merge(doc: tomlkit.TOMLDocument, kind: str, items: dict[str, Any]) -> None:
    """Make the document's ``[[kind]]`` entries say ``items``, touching only what differs."""
    tables = doc.get(kind)
    if not isinstance(tables, AoT):
        tables = tomlkit.aot()
        doc.append(kind, tables)
    done: set[str] = set()
    for i in reversed(range(len(tables))):
        table = tables[i]
        raw = table.unwrap()
        key = str(raw.get(KEYS[kind], "")).upper()
        if key not in items:
            del tables[i]  # no longer in the registry
            continue
        _update(table, items[key].to_dict(), MAKERS[kind](raw, kind).to_dict())
        done.add(key)
    new = [item for key, item in items.items() if key not in done]
    if new:
        # A blank line before each new entry, like the others (the document is rendered
        # once to see how it ends, not once per entry: a bench adds thousands).
        blank = tomlkit.dumps(doc).endswith("\n\n")
        for item in new:
            table = _new_table(item.to_dict())
            if not blank:
                table.trivia.indent = "\n"
            blank = False
            tables.append(table)


def _update(table: Table, new: dict[str, Any], old: dict[str, Any]) -> None:
    """Set the keys whose meaning changed (``old`` is what the table says, read as the registry reads it)."""
    for key, value in new.items():
        if isinstance(value, dict):
            sub = table.get(key)
            if isinstance(sub, Table):
                _update(sub, value, old.get(key, {}))
            elif value != old.get(key, {}):
                table.append(key, _new_table(value))
        elif value != old.get(key):
            table[key] = value


def _new_table(values: dict[str, Any]) -> Table:
    table = tomlkit.table()
    for key, value in values.items():
        if value is not None:
            table.append(key, _new_table(value) if isinstance(value, dict) else value)
    return table


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old file or the new one, never half.

    The new file keeps the old one's permissions; it is written beside it, synced,
    and renamed over it."""
    tomllib.loads(text)  # never write a file the switch could not read back
    path = Path(path)
    try:
        mode: Optional[int] = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
