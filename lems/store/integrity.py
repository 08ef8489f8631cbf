"""Checking the journal's chains and pruning them without losing the evidence.

``verify`` walks each chain from its retention anchor (or 1) in sequence order:
every record's hash must match its content, its ``prev`` the record before it,
and the sequence numbers must run without gaps up to the highest number SQLite
ever handed out (``sqlite_sequence``, so removing the newest records is seen
too).

``prune`` removes a verified prefix of each chain and leaves an anchor (the last
pruned record's sequence number and hash) where the chain resumes.  The anchor
row alone would let anyone delete records and move it; so every prune also
appends an ``admin`` journal record, event ``RETENTION``, outcome ``OK``, whose
text ends with the anchors it left::

    ... ANCHORS JOURNAL <seq> <hash> DISSEMINATION <seq> <hash>

That record is hash-chained like any other, and ``verify`` checks that the
anchors in ``journal_anchor`` are exactly the ones the newest such record names
(an anchor with no such record, or one that differs from it, fails as ``anchor
broken``).

An anchor must also be as old as the retention allows: the record it names
(``journal_anchor.stamped``) was written at least ``max(365, the days the
RETENTION record states)`` days before the prune (``pruned_at``); anchors made
before that column existed are checked by their cutoff (``anchor too young``).

The chains alone cannot show a cut at the end or a moved start (what is left
is a valid chain).  A file store keeps a signed head file beside the database
(``lems.store.head``, written with every commit); ``verify`` reads it before and
after its walk and reports a database behind it (``cut tail``), records past
it (``not in head``), a rewritten head (``head mismatch``), an anchor it does
not name (``forged anchor``), a head file whose signature fails (``head file
invalid``) and a store with its key but no head file (``head file missing``).
A store made before head files has neither: ``verify`` says so in
``head_note`` and checks the chains all the same.  One process writes a store
at a time.
"""

from __future__ import annotations

import datetime as _dt
import re
import sqlite3
from typing import Any, Optional

import attrs
import structlog

from pathlib import Path

from lems.base.clock import stamp
from lems.store import head as head_mod
from lems.store.chain import CHAINS, DISSEMINATION, GENESIS, JOURNAL, Chain, Journal, chain_anchor, chain_head, digest

RETENTION_FLOOR_DAYS = 365
WITNESS_EVENT = "RETENTION"
_ANCHORS = re.compile(r"ANCHORS JOURNAL (\d+) ([0-9a-f]{64}) DISSEMINATION (\d+) ([0-9a-f]{64})$")
_DAYS = re.compile(r"\((\d+) DAYS\)")

log = structlog.get_logger("lems.store.journal")


# -- verification -------------------------------------------------------------------

@attrs.frozen
class VerifyResult:
    """Outcome of ``verify``: either ok, or the first bad record and why.

    ``reason`` is one of ``edited`` (content, prev or hash changed), ``removed``
    (a gap in the sequence numbers, ``bad_seq`` is the first missing one),
    ``reordered`` (the record belongs elsewhere in the chain), ``chain broken``
    (its predecessor is not the record it was chained to: that one was altered and
    re-hashed, or records were removed and the rest renumbered) and ``anchor
    broken`` (the retention anchor is not the one the newest RETENTION record
    left; ``bad_seq`` is the anchor that record names).
    """

    ok: bool
    checked: int                       # journal records checked
    disseminations: int = 0            # dissemination records checked
    table: Optional[str] = None        # journal or dissemination, when not ok
    bad_seq: Optional[int] = None
    reason: Optional[str] = None
    detail: str = ""
    head_seq: int = 0                  # newest journal record (for an outside witness)
    head_hash: str = GENESIS
    head_note: str = ""                # what the signed head file said (or that there is none)


@attrs.frozen
class _ChainCheck:
    checked: int
    last_seq: int
    last_hash: str
    bad_seq: Optional[int] = None
    reason: Optional[str] = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


@attrs.frozen
class _AnchorProblem:
    table: str
    bad_seq: int
    detail: str
    witnessed: bool                    # a RETENTION record says what the anchor should be


def _lenient_text(raw: bytes) -> str:
    # A byte changed on disk can leave text that is not UTF-8: read it anyway so it
    # fails its hash instead of stopping the check.
    return raw.decode("utf-8", "surrogateescape")


def _check(conn: sqlite3.Connection, chain: Chain, upto: Optional[int] = None) -> _ChainCheck:
    """Walk one chain from its anchor in sequence order (up to ``upto`` inclusive)."""
    table = chain.table
    exp_seq, exp_prev = chain_anchor(conn, chain)
    exp_seq += 1
    checked = 0
    sql = f"SELECT seq, {', '.join(chain.columns)}, prev, hash FROM {table}"
    rows = conn.execute(sql + " ORDER BY seq") if upto is None else \
        conn.execute(sql + " WHERE seq <= ? ORDER BY seq", (upto,))

    def bad(seq: int, reason: str, detail: str) -> _ChainCheck:
        return _ChainCheck(checked, exp_seq - 1, exp_prev, seq, reason, detail)

    for seq, *values, prev, stored in rows:
        if seq < exp_seq:
            return bad(seq, "chain broken", f"record {seq} lies before the retention anchor {exp_seq - 1}")
        if seq > exp_seq:
            missing = str(exp_seq) if seq == exp_seq + 1 else f"{exp_seq}-{seq - 1}"
            return bad(exp_seq, "removed", f"record {missing} missing before record {seq}")
        if not isinstance(prev, str) or not isinstance(stored, str) or digest(prev, values) != stored:
            return bad(seq, "edited", "stored hash does not match the record's content")
        if prev != exp_prev:
            return bad(seq, *_misplaced(conn, table, seq, prev, exp_prev))
        exp_seq, exp_prev = seq + 1, stored
        checked += 1
    if upto is None:
        # Taking records off the end leaves no gap behind them; SQLite's own counter does.
        top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        if top is not None and isinstance(top[0], int) and top[0] >= exp_seq:
            missing = str(exp_seq) if top[0] == exp_seq else f"{exp_seq}-{top[0]}"
            return bad(exp_seq, "removed", f"record {missing} missing at the end")
    elif exp_seq <= upto:
        return bad(exp_seq, "removed", f"record {exp_seq}-{upto} missing")
    return _ChainCheck(checked, exp_seq - 1, exp_prev)


def _misplaced(conn: sqlite3.Connection, table: str, seq: int, prev: str, exp_prev: str) -> tuple[str, str]:
    # Only reached on a failure, so these unindexed look-ups cost nothing normally.
    row = conn.execute(f"SELECT seq FROM {table} WHERE hash = ? AND seq != ?", (prev, seq)).fetchone()
    if row is not None:
        return "reordered", f"record {seq} follows record {row[0]} in the chain"
    row = conn.execute(f"SELECT seq FROM {table} WHERE prev = ? AND seq != ?", (exp_prev, seq)).fetchone()
    if row is not None:
        return "reordered", f"record {row[0]} belongs at {seq} in the chain"
    return "chain broken", f"record {seq} is not chained to record {seq - 1}"


def _anchor_rows(conn: sqlite3.Connection) -> dict[str, Optional[tuple[Any, Any]]]:
    found = {table: (seq, hash_) for table, seq, hash_ in conn.execute("SELECT chain, seq, hash FROM journal_anchor")}
    return {chain.table: found.get(chain.table) for chain in CHAINS}


def _witness(conn: sqlite3.Connection) -> Optional[tuple[int, Optional[dict[str, tuple[int, str]]]]]:
    """The newest OK RETENTION record and the anchors it names (None if it names none).

    Retention runs daily, so reading back from the newest record finds it at once."""
    row = conn.execute(f"SELECT seq, {', '.join(JOURNAL.columns)}, prev, hash FROM journal "
                       "WHERE kind = 'admin' AND event = ? AND outcome = 'OK' ORDER BY seq DESC LIMIT 1",
                       (WITNESS_EVENT,)).fetchone()
    if row is None:
        return None
    seq, *values, prev, stored = row
    if digest(prev, values) != stored:
        return None  # an edited record vouches for nothing; the walk names it
    match = _ANCHORS.search(values[JOURNAL.columns.index("text")] or "")
    if match is None:
        return seq, None
    j_seq, j_hash, d_seq, d_hash = match.groups()
    return row[0], {JOURNAL.table: (int(j_seq), j_hash), DISSEMINATION.table: (int(d_seq), d_hash)}


def _anchor_problem(conn: sqlite3.Connection) -> Optional[_AnchorProblem]:
    """Do the anchors in journal_anchor match what the newest RETENTION record left?"""
    rows = _anchor_rows(conn)
    witness = _witness(conn)
    if witness is None:
        for table, row in rows.items():
            if row is not None:
                return _AnchorProblem(table, row[0], f"the {table} retention anchor (record {row[0]}) has no "
                                                     f"RETENTION record in the journal that left it", False)
        return None
    seq, claims = witness
    if claims is None:
        return _AnchorProblem(JOURNAL.table, 0, f"RETENTION record {seq} does not name the anchors it left", True)
    for table, row in rows.items():
        have, want = row or (0, GENESIS), claims[table]
        if tuple(have) != want:
            now = f"record {have[0]} hash {str(have[1])[:16]}..." if row is not None else "missing"
            return _AnchorProblem(table, want[0], f"the {table} retention anchor is {now}; RETENTION record "
                                                  f"{seq} left record {want[0]} hash {want[1][:16]}...", True)
    return None


def store_file(conn: sqlite3.Connection) -> Optional[Path]:
    """The database file behind the connection (None in memory)."""
    for _seq, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return Path(file) if file else None
    return None


def verify(conn: sqlite3.Connection, store_path: Optional[Path] = None) -> VerifyResult:
    """Check both chains (journal first), their anchors and the signed head file, inside one read snapshot.

    The head file is looked for beside ``store_path`` (default: the connection's own file)."""
    own = not conn.in_transaction
    path = store_path if store_path is not None else store_file(conn)
    before = after = None
    head_error: Optional[str] = None
    if path is not None and own:
        try:
            before = head_mod.read(path)
        except head_mod.HeadError as exc:
            head_error = str(exc)
    if own:
        conn.execute("BEGIN")
    text_factory = conn.text_factory
    conn.text_factory = _lenient_text
    try:
        result = _verify(conn)
        db_state = head_mod.state(conn) if before is not None else None
    finally:
        conn.text_factory = text_factory
        if own:
            conn.execute("ROLLBACK")
    if path is None:
        return result
    if not own:
        return attrs.evolve(result, head_note="head file not compared: verify ran inside an open transaction")
    # A chain that fails is reported as it fails; a too young anchor gives way to what the head
    # file says of it (a forged anchor is the more exact finding).
    if not result.ok and result.reason != "anchor too young":
        return result
    if head_error is not None:
        return attrs.evolve(result, ok=False, table=JOURNAL.table, bad_seq=None, reason="head file invalid",
                            detail=head_error)
    head_file = head_mod.head_path(path)
    if before is None:
        if not result.ok:
            return result
        if head_mod.key_path(path).exists() or head_mod.public_key_path(path).exists():
            return attrs.evolve(result, ok=False, table=JOURNAL.table, bad_seq=None, reason="head file missing",
                                detail=f"the store has its signing key {head_mod.key_path(path)} but no head file "
                                       f"{head_file}: it was removed, so a cut tail or a moved anchor would not show")
        return attrs.evolve(result, head_note=f"no head file {head_file}: this store was made before head files, "
                                              "so a cut tail or a moved anchor cannot be seen (the chains were "
                                              "checked); `lems serve` makes one, and its key, at start")
    try:
        after = head_mod.read(path)
    except head_mod.HeadError as exc:
        return attrs.evolve(result, ok=False, table=JOURNAL.table, bad_seq=None, reason="head file invalid",
                            detail=str(exc))
    assert db_state is not None
    problem = head_mod.compare(db_state, before, after)
    if problem is not None:
        return attrs.evolve(result, ok=False, table=problem.table, bad_seq=problem.bad_seq, reason=problem.reason,
                            detail=problem.detail)
    if not result.ok:
        return result
    return attrs.evolve(result, head_note=f"signed head file {head_file}: matches (written {before.written})")


def _verify(conn: sqlite3.Connection) -> VerifyResult:
    anchor = _anchor_problem(conn)
    journal = _check(conn, JOURNAL)
    head = (journal.last_seq, journal.last_hash)

    def broken_anchor(checked: int, disseminations: int) -> VerifyResult:
        assert anchor is not None
        return VerifyResult(False, checked, disseminations, anchor.table, anchor.bad_seq, "anchor broken",
                            anchor.detail, *head)

    def at_anchor(chain: Chain, check: _ChainCheck) -> bool:
        # A chain that fails where it resumes, next to a moved or missing anchor: the
        # anchor is the thing that was changed, and the clearer thing to report.
        return (anchor is not None and anchor.witnessed and anchor.table == chain.table
                and check.bad_seq is not None and check.bad_seq <= chain_anchor(conn, chain)[0] + 1)

    if not journal.ok:
        if at_anchor(JOURNAL, journal):
            return broken_anchor(journal.checked, 0)
        return VerifyResult(False, journal.checked, 0, "journal", journal.bad_seq, journal.reason,
                            journal.detail, *head)
    head = chain_head(conn, JOURNAL)
    dissem = _check(conn, DISSEMINATION)
    if not dissem.ok:
        if at_anchor(DISSEMINATION, dissem):
            return broken_anchor(journal.checked, dissem.checked)
        return VerifyResult(False, journal.checked, dissem.checked, "dissemination", dissem.bad_seq,
                            dissem.reason, dissem.detail, *head)
    if anchor is not None:
        return broken_anchor(journal.checked, dissem.checked)
    young = _young_anchor(conn)
    if young is not None:
        return VerifyResult(False, journal.checked, dissem.checked, young[0], young[1], "anchor too young",
                            young[2], *head)
    return VerifyResult(True, journal.checked, dissem.checked, head_seq=head[0], head_hash=head[1])


def _when(ts: Any) -> Optional[_dt.datetime]:
    if not isinstance(ts, str) or len(ts) < 14 or not ts[:16].isdigit():
        return None
    at = _dt.datetime.strptime(ts[:14], "%Y%m%d%H%M%S")
    return at + _dt.timedelta(milliseconds=10 * int(ts[14:16] or 0))


def _young_anchor(conn: sqlite3.Connection) -> Optional[tuple[str, int, str]]:
    """(table, anchor seq, why) for an anchor younger than the retention allows, else None.

    Called once the anchors are known to be the ones the newest RETENTION record left."""
    stamped_col = "stamped" if _has_stamped(conn) else "NULL"
    rows = conn.execute(f"SELECT chain, seq, pruned_at, cutoff, {stamped_col} FROM journal_anchor").fetchall()
    if not rows:
        return None
    witness = conn.execute("SELECT text FROM journal WHERE kind = 'admin' AND event = ? AND outcome = 'OK' "
                           "ORDER BY seq DESC LIMIT 1", (WITNESS_EVENT,)).fetchone()
    stated = _DAYS.search(witness[0] or "") if witness is not None else None
    days = max(RETENTION_FLOOR_DAYS, int(stated.group(1)) if stated else 0)
    keep = _dt.timedelta(days=days)
    for table, seq, pruned_at, cutoff, stamped in sorted(rows, key=lambda r: r[0] != JOURNAL.table):
        pruned, cut, written = _when(pruned_at), _when(cutoff), _when(stamped)
        if pruned is None or cut is None:
            return table, seq, f"the {table} retention anchor (record {seq}) has no valid prune time or cutoff"
        if written is not None and pruned - written < keep:
            return table, seq, (f"the {table} retention anchor, record {seq} stamped {written:%Y-%m-%d %H:%M:%S} "
                                f"UTC, was pruned at {pruned:%Y-%m-%d %H:%M:%S} UTC, "
                                f"{(pruned - written).days} days after it was written; retention keeps records "
                                f"{days} days")
        if pruned - cut < _dt.timedelta(days=RETENTION_FLOOR_DAYS) or (written is not None and written >= cut):
            return table, seq, (f"the {table} retention anchor (record {seq}) was left by a prune at "
                                f"{pruned:%Y-%m-%d %H:%M:%S} UTC of the records stamped before "
                                f"{cut:%Y-%m-%d %H:%M:%S} UTC, {(pruned - cut).days} days earlier; retention "
                                f"keeps records at least {RETENTION_FLOOR_DAYS} days")
    return None


# -- retention --------------------------------------------------------------------------

@attrs.frozen
class PruneResult:
    requested_days: int
    days: int                          # what was applied, never below the floor
    floor_applied: bool
    cutoff: str                        # records stamped before this were eligible
    journal_pruned: int = 0
    dissemination_pruned: int = 0
    anchor_seq: int = 0                # journal anchor after pruning
    refused: Optional[str] = None      # why nothing was pruned (a chain failed to verify)
    record_seq: Optional[int] = None   # the RETENTION journal record written, if any

    @property
    def pruned(self) -> int:
        return self.journal_pruned + self.dissemination_pruned


def prune(conn: sqlite3.Connection, clock: Any, days: int, journal: Optional[Journal] = None,
          now: Optional[_dt.datetime] = None) -> PruneResult:
    """Delete journal and dissemination records older than ``days`` (at least 365).

    Only a prefix of each chain in sequence order is removed (up to the first
    record inside the retention period), and only after that prefix and the
    current anchors verify, so pruning never destroys the evidence of tampering.
    The last pruned record's sequence number and hash become the chain's anchor,
    and one RETENTION admin record (appended through ``journal``, else a journal
    of its own on ``conn``) says how many records went, up to when, and which
    anchors were left; a refusal is recorded the same way, outcome ``REFUSED``.
    Nothing pruned, nothing written.  Runs in a savepoint: it joins the caller's
    transaction if one is open, else commits on its own.
    """
    now = now if now is not None else clock.now()
    applied = max(int(days), RETENTION_FLOOR_DAYS)
    if applied != days:
        log.warning("journal retention below the floor, raised", requested_days=days, days=applied)
    cutoff_time = now - _dt.timedelta(days=applied)
    cutoff = stamp(cutoff_time)
    counts = {chain.table: 0 for chain in CHAINS}
    record_seq = None
    conn.execute("SAVEPOINT journal_prune")
    text_factory = conn.text_factory
    try:
        conn.text_factory = _lenient_text  # tampered bytes refuse the prune, they do not stop it
        try:
            refused = _prune_chains(conn, cutoff, stamp(now), counts)
        finally:
            conn.text_factory = text_factory
        if refused is not None:
            conn.execute("ROLLBACK TO journal_prune")
            counts = {chain.table: 0 for chain in CHAINS}
        if refused is not None or any(counts.values()):
            writer = journal if journal is not None else Journal(conn, clock)
            if refused is not None:
                record_seq = writer.append("admin", event=WITNESS_EVENT, outcome="REFUSED",
                                           text=f"NOTHING PRUNED ({applied} DAYS): {refused}")
            else:
                record_seq = writer.append("admin", event=WITNESS_EVENT, outcome="OK",
                                           text=_witness_text(conn, counts, cutoff_time, applied))
    except BaseException:
        # Never keep a deletion without its anchor and its record.
        conn.execute("ROLLBACK TO journal_prune")
        raise
    finally:
        conn.execute("RELEASE journal_prune")
    if refused is not None:
        log.error("journal prune refused, chain does not verify", reason=refused)
        return PruneResult(days, applied, applied != days, cutoff, refused=refused, record_seq=record_seq)
    if any(counts.values()):
        log.info("journal pruned", cutoff=cutoff, days=applied, **counts)
    return PruneResult(days, applied, applied != days, cutoff, counts[JOURNAL.table], counts[DISSEMINATION.table],
                       chain_anchor(conn, JOURNAL)[0], record_seq=record_seq)


def _witness_text(conn: sqlite3.Connection, counts: dict[str, int], cutoff: _dt.datetime, days: int) -> str:
    (j_seq, j_hash), (d_seq, d_hash) = chain_anchor(conn, JOURNAL), chain_anchor(conn, DISSEMINATION)
    return (f"PRUNED {counts[JOURNAL.table]} JOURNAL AND {counts[DISSEMINATION.table]} DISSEMINATION RECORDS "
            f"STAMPED BEFORE {cutoff.strftime('%Y-%m-%d %H:%M:%S')} UTC ({days} DAYS); "
            f"ANCHORS JOURNAL {j_seq} {j_hash} DISSEMINATION {d_seq} {d_hash}")


def _prune_chains(conn: sqlite3.Connection, cutoff: str, now: str, counts: dict[str, int]) -> Optional[str]:
    """Delete each chain's prefix stamped before ``cutoff``; the reason if one fails to verify."""
    problem = _anchor_problem(conn)
    if problem is not None:
        return f"{problem.table} anchor broken: {problem.detail}"
    for chain in CHAINS:
        # +ts: walk in sequence order and stop at the first record to keep.
        keep = conn.execute(f"SELECT seq FROM {chain.table} WHERE +ts >= ? ORDER BY seq LIMIT 1",
                            (cutoff,)).fetchone()
        if keep is not None:
            last = keep[0] - 1
        else:
            last = conn.execute(f"SELECT MAX(seq) FROM {chain.table}").fetchone()[0]
        if last is None or last <= chain_anchor(conn, chain)[0]:
            continue
        check = _check(conn, chain, upto=last)
        if not check.ok:
            return f"{chain.table} record {check.bad_seq} {check.reason}: {check.detail}"
        stamped = conn.execute(f"SELECT ts FROM {chain.table} WHERE seq = ?", (check.last_seq,)).fetchone()[0]
        counts[chain.table] = conn.execute(f"DELETE FROM {chain.table} WHERE seq <= ?", (last,)).rowcount
        if _has_stamped(conn):
            conn.execute("INSERT INTO journal_anchor (chain, seq, hash, pruned_at, cutoff, stamped) "
                         "VALUES (?, ?, ?, ?, ?, ?) "
                         "ON CONFLICT(chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                         "pruned_at = excluded.pruned_at, cutoff = excluded.cutoff, stamped = excluded.stamped",
                         (chain.table, check.last_seq, check.last_hash, now, cutoff, stamped))
        else:  # a journal made without the store's migrations (0007 adds the column)
            conn.execute("INSERT INTO journal_anchor (chain, seq, hash, pruned_at, cutoff) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT(chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                         "pruned_at = excluded.pruned_at, cutoff = excluded.cutoff",
                         (chain.table, check.last_seq, check.last_hash, now, cutoff))
    return None


def _has_stamped(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "stamped" for row in conn.execute("PRAGMA table_info(journal_anchor)"))
