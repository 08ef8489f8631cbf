"""The journal's head outside the database: a signed head file written with every commit.

A hash chain shows an edited or removed record, but not a chain cut at its end
(delete the newest records, lower ``sqlite_sequence``) or one whose start was
moved (delete the oldest records, forge the ``journal_anchor`` row and a
RETENTION record): what is left is a valid chain.  So the store keeps, beside
the database and out of its reach, what the chains looked like at the last
commit:

``<store>-head`` (``var/lems.sqlite-head``), one line of JSON::

    {"format": 1, "committed": STATE, "pending": STATE, "written": ISO time, "sig": hex}

    STATE = {"journal": [seq, hash], "dissemination": [seq, hash],
             "anchors": {"journal": ANCHOR|null, "dissemination": ANCHOR|null}}
    ANCHOR = [seq, hash, pruned_at, cutoff, stamped]   (the journal_anchor row)

``sig`` is an Ed25519 signature (``journal_ed25519`` beside the store, made at
``lems init``, or at the first open of a store that has none) over the
canonical JSON of the other members.

padded with spaces to one page (4,096 bytes) and written over itself at offset 0
with one ``pwrite`` on a descriptor kept open: a one-page write is never cut
by a killed process, and it costs a few microseconds where a temporary file
renamed over the old one cost 0.3 ms (SECURITY.md has the figures).  Not
fsynced: see SECURITY.md on power failures.

``Store.commit`` writes the file *before* its COMMIT, naming the state last
committed and the state the COMMIT is about to make (``pending``).  So
whatever moment the process dies at, the database is in one of the two states
the file names: before the COMMIT in ``committed``, after it in ``pending``.
The next call to ``commit`` (the switch's one-second tick at the latest, and
``close``) confirms it: both members then name the committed state, and the
last turn's records can no longer be cut as if the COMMIT had never happened.  ``verify``
therefore accepts exactly those two: a database behind ``committed`` is a cut
tail; one past ``pending`` holds records the switch never wrote; a retention
anchor that is in neither is a forged anchor.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Optional

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from lems.base.private import FILE_MODE, private_dir
from lems.store.chain import CHAINS, chain_head

FORMAT = 1
KEY_NAME = "journal_ed25519"
State = dict  # the JSON object above


class HeadError(Exception):
    """The head file cannot be read or its signature does not verify."""


def head_path(store_path: Path) -> Path:
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + "-head")


def key_path(store_path: Path) -> Path:
    return Path(store_path).with_name(KEY_NAME)


def public_key_path(store_path: Path) -> Path:
    return Path(store_path).with_name(KEY_NAME + ".pub")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, data)
    finally:
        os.close(fd)


def ensure_key(store_path: Path) -> ed25519.Ed25519PrivateKey:
    """The store's signing key; made (owner-only, with its public half) when there is none."""
    private = key_path(store_path)
    if private.exists():
        key = serialization.load_pem_private_key(private.read_bytes(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise HeadError(f"{private} is not an Ed25519 private key")
    else:
        private_dir(private.parent)
        key = ed25519.Ed25519PrivateKey.generate()
        _write_private(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    public = public_key_path(store_path)
    if not public.exists():
        _write_private(public, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


def load_public_key(store_path: Path) -> ed25519.Ed25519PublicKey:
    path = public_key_path(store_path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise HeadError(f"cannot read the head file's public key {path}: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise HeadError(f"{path} is not an Ed25519 public key")
    return key


def has_journal(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
                        "AND name IN ('journal', 'dissemination', 'journal_anchor')").fetchone()[0] == 3


def state(conn: sqlite3.Connection) -> State:
    """The chains' heads and anchors as the connection sees them (a few indexed look-ups)."""
    out: dict[str, Any] = {chain.table: list(chain_head(conn, chain)) for chain in CHAINS}
    try:
        rows = conn.execute("SELECT chain, seq, hash, pruned_at, cutoff, stamped FROM journal_anchor").fetchall()
    except sqlite3.OperationalError:  # a store not yet migrated to 0007 (read-only verify of an old home)
        rows = [(*row, None) for row in
                conn.execute("SELECT chain, seq, hash, pruned_at, cutoff FROM journal_anchor").fetchall()]
    found = {row[0]: list(row[1:]) for row in rows}
    out["anchors"] = {chain.table: found.get(chain.table) for chain in CHAINS}
    return out


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode("ascii")


@attrs.frozen
class Head:
    committed: State
    pending: State
    written: str

    def states(self) -> tuple[State, State]:
        return self.committed, self.pending


PAGE = 4096


class HeadFile:
    """Writes ``<store>-head`` with the store's key: one page, rewritten in place, per commit."""

    def __init__(self, store_path: Path, key: ed25519.Ed25519PrivateKey) -> None:
        self.path = head_path(store_path)
        self.key = key
        self._fd: Optional[int] = None

    def write(self, committed: State, pending: State) -> None:
        body = {"format": FORMAT, "committed": committed, "pending": pending,
                "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")}
        signed = _canonical(body)
        # The same object with "sig" added (a reader pops it and checks the rest).
        data = b"%s,\"sig\":\"%s\"}\n" % (signed[:-1], self.key.sign(signed).hex().encode("ascii"))
        if len(data) > PAGE:  # fixed-size members: about 1,100 bytes
            raise HeadError(f"head record of {len(data)} bytes does not fit one page")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
            os.fchmod(self._fd, FILE_MODE)
        os.pwrite(self._fd, data.ljust(PAGE, b" "), 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read(store_path: Path) -> Optional[Head]:
    """The head file beside the store, its signature checked; None when there is none."""
    path = head_path(store_path)
    for _attempt in range(READ_ATTEMPTS - 1):
        try:
            return _read(store_path, path)
        except HeadError:
            continue  # a read that met the running switch's write half-way: read again
    return _read(store_path, path)


READ_ATTEMPTS = 3


def _read(store_path: Path, path: Path) -> Optional[Head]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HeadError(f"cannot read the head file {path}: {exc}") from None
    try:
        body = json.loads(raw)
        sig = bytes.fromhex(body.pop("sig"))
        if body.get("format") != FORMAT:
            raise ValueError(f"unknown format {body.get('format')!r}")
        committed, pending, written = body["committed"], body["pending"], body["written"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HeadError(f"the head file {path} cannot be read ({exc})") from None
    try:
        load_public_key(store_path).verify(sig, _canonical(body))
    except InvalidSignature:
        raise HeadError(f"the head file {path} does not carry a valid signature of "
                        f"{public_key_path(store_path)}: it was edited or forged") from None
    return Head(committed, pending, written)


def _short(hash_: Any) -> str:
    return f"{str(hash_)[:16]}..."


def _anchor_text(anchor: Optional[list]) -> str:
    return f"record {anchor[0]} hash {_short(anchor[1])}" if anchor else "none (nothing pruned)"


@attrs.frozen
class Mismatch:
    reason: str          # "cut tail", "forged anchor", "not in head", "head mismatch"
    table: str
    bad_seq: int
    detail: str


def compare(db: State, before: Head, after: Optional[Head] = None) -> Optional[Mismatch]:
    """Is the database state one the head file allows?  ``after`` is the file read again after the
    database was read: when the switch moved on in between, any state between the two is its own."""
    after = after or before
    racing = after != before
    candidates = [*before.states(), *after.states()]
    if db in candidates:
        return None
    for chain in CHAINS:
        table = chain.table
        have = db["anchors"].get(table)
        if all(have != c["anchors"].get(table) for c in candidates):
            want = before.committed["anchors"].get(table)
            return Mismatch("forged anchor", table, have[0] if have else 0,
                            f"the {table} retention anchor is {_anchor_text(have)}; the signed head file "
                            f"names {_anchor_text(want)}")
    for chain in CHAINS:
        table = chain.table
        seq, hash_ = db[table]
        low, high = before.committed[table], after.pending[table]
        if seq < low[0]:
            missing = str(low[0]) if seq + 1 == low[0] else f"{seq + 1}-{low[0]}"
            return Mismatch("cut tail", table, seq + 1,
                            f"record {missing} missing at the end: the signed head file names record {low[0]} "
                            f"hash {_short(low[1])} and the {table} ends at record {seq}")
        if seq > high[0]:
            extra = str(seq) if seq == high[0] + 1 else f"{high[0] + 1}-{seq}"
            return Mismatch("not in head", table, high[0] + 1,
                            f"record {extra} after record {high[0]}, the newest the signed head file names: "
                            f"the switch did not write them")
        if [seq, hash_] in ([c[table] for c in candidates]) or racing:
            continue
        return Mismatch("head mismatch", table, seq,
                        f"the {table} ends at record {seq} hash {_short(hash_)}; the signed head file names "
                        f"record {low[0]} hash {_short(low[1])} (committed) or record {high[0]} hash "
                        f"{_short(high[1])} (being committed): the chain was rewritten")
    return None
