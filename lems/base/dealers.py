"""Licensed firearms dealers (PROTOCOL.md 10): terminals/dealers.toml.

Each dealer has an id (``D`` + 7 digits), its federal firearms licence number,
its business name, a status (``active``, ``suspended``, ``revoked``) and the
hash of its API key.  The key itself is printed once by ``lems dealer add`` and
never written anywhere.

Why SHA-256 and not scrypt (as operators' passwords are): an API key is made by
the switch, 32 random bytes (256 bits) from ``secrets``, not chosen by a person,
so there is nothing to guess and a slow hash buys nothing; a slow hash on the
other hand would cost every request a third of a second of CPU and let anyone
with a wrong key load the switch.  The hash is also the lookup key (a dict from
hash to dealer), so a request finds its dealer in constant time without
comparing keys one by one.  (The demo key of appendix A is public anyway.)

The file is edited in place with tomlkit, like the rest of terminals/, and
replaced atomically; a change is announced in the store so a running switch
takes it at once (PROTOCOL.md 8).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any, Optional

import attrs
import tomlkit
from tomlkit.items import AoT

from lems.base.registry import RegistryError, write_atomically

FILE = "dealers.toml"
STATUSES = ("active", "suspended", "revoked")
DEALER_ID = re.compile(r"^D\d{7}$")
# ATF licence number: region-district-county-type-expiry-sequence (9-93-999-01-2A-00001).
FFL = re.compile(r"^\d-\d{2}-\d{3}-\d{2}-[0-9A-Z]{2}-\d{5}$")
HASH_PREFIX = "sha256:"
HEADER = ("# Licensed firearms dealers (PROTOCOL.md 10). key_hash is the SHA-256 of the dealer's API key;\n"
          "# the key itself is printed once by `lems dealer add` and kept nowhere.")


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh API key: 256 random bits, URL-safe text."""
    return "fics_" + secrets.token_urlsafe(32)


@attrs.frozen
class Dealer:
    id: str
    ffl: str
    name: str
    key_hash: str
    status: str = "active"

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "Dealer":
        try:
            dealer = cls(str(raw["id"]).upper(), str(raw["ffl"]).upper(), str(raw["name"]),
                         str(raw["key_hash"]), str(raw.get("status", "active")))
        except KeyError as exc:
            raise RegistryError(f"{where}: needs {exc.args[0]}") from None
        problem = dealer.problem()
        if problem:
            raise RegistryError(f"{where}: {problem}")
        return dealer

    def problem(self) -> Optional[str]:
        if not DEALER_ID.match(self.id):
            return f"dealer id {self.id!r} must be D and 7 digits"
        if not FFL.match(self.ffl):
            return f"FFL {self.ffl!r} must look like 9-93-999-01-2A-00001"
        if not self.name.strip():
            return "name is empty"
        if self.status not in STATUSES:
            return f"status {self.status!r} must be one of {', '.join(STATUSES)}"
        if not self.key_hash.startswith(HASH_PREFIX) or len(self.key_hash) != len(HASH_PREFIX) + 64:
            return "key_hash must be sha256:<64 hex digits>"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ffl": self.ffl, "name": self.name, "status": self.status,
                "key_hash": self.key_hash}


@attrs.frozen
class Dealers:
    """The dealers of a home, by id and by key hash."""

    path: Path
    by_id: dict[str, Dealer]
    by_hash: dict[str, Dealer] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "by_hash", {d.key_hash: d for d in self.by_id.values()})

    @classmethod
    def load(cls, directory: Path) -> "Dealers":
        """terminals/dealers.toml; a home without the file has no dealers."""
        path = Path(directory) / FILE
        try:
            with path.open("rb") as f:
                raw = tomllib.load(f)
        except FileNotFoundError:
            return cls(path, {})
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"{path}: {exc}") from None
        out: dict[str, Dealer] = {}
        hashes: set[str] = set()
        for i, entry in enumerate(raw.get("dealer", []), 1):
            dealer = Dealer.from_dict(entry, f"{path}: dealer #{i}")
            if dealer.id in out:
                raise RegistryError(f"{path}: {dealer.id} is listed twice")
            if dealer.key_hash in hashes:
                raise RegistryError(f"{path}: {dealer.id} shares its API key with another dealer")
            hashes.add(dealer.key_hash)
            out[dealer.id] = dealer
        return cls(path, out)

    def get(self, dealer_id: str) -> Optional[Dealer]:
        return self.by_id.get(dealer_id.strip().upper())

    def authenticate(self, key: str) -> Optional[Dealer]:
        """The dealer whose key this is (any status), or None."""
        if not key:
            return None
        return self.by_hash.get(hash_key(key))

    def with_dealer(self, dealer: Dealer) -> "Dealers":
        """A new registry with ``dealer`` added or changed, written to the file."""
        problem = dealer.problem()
        if problem:
            raise RegistryError(problem)
        other = self.by_hash.get(dealer.key_hash)
        if other is not None and other.id != dealer.id:
            raise RegistryError("that API key belongs to another dealer")
        new = attrs.evolve(self, by_id={**self.by_id, dealer.id: dealer})
        new.save()
        return new

    def save(self) -> None:
        try:
            doc = tomlkit.parse(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = tomlkit.parse(HEADER + "\n")
        tables = doc.get("dealer")
        if not isinstance(tables, AoT):
            tables = tomlkit.aot()
            doc.append("dealer", tables)
        done: set[str] = set()
        for i in reversed(range(len(tables))):
            key = str(tables[i].get("id", "")).upper()
            if key not in self.by_id:
                del tables[i]
                continue
            for name, value in self.by_id[key].to_dict().items():
                if tables[i].get(name) != value:
                    tables[i][name] = value
            done.add(key)
        blank = tomlkit.dumps(doc).endswith("\n\n")
        for key, dealer in self.by_id.items():
            if key not in done:
                table = tomlkit.table()
                for name, value in dealer.to_dict().items():
                    table.append(name, value)
                if not blank:
                    table.trivia.indent = "\n"
                blank = False
                tables.append(table)
        text = tomlkit.dumps(doc)
        if Dealers(self.path, {d.id: d for d in (Dealer.from_dict(e, str(self.path))
                                                for e in tomllib.loads(text).get("dealer", []))}) != self:
            raise RegistryError(f"{self.path}: the rewritten file would not load back to the same dealers")
        write_atomically(self.path, text)
