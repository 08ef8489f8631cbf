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

Limits, stated plainly: a keyless chain shows edits, deletions and reorders done
by anyone who does not also recompute every later hash.  ``verify`` reports the
head (sequence number and hash); recording it elsewhere from time to time turns
a full rewrite into a detectable one.  One process writes a store at a time.
"""

from __future__ import annotations

import datetime as _dt
import re
import sqlite3
from typing import Any, Optional

import attrs
import structlog

from lems.base.clock import stamp
from lems.store.chain import CHAINS, DISSEMINATION, GENESIS, JOURNAL, Chain, Journal, chain_anchor, chain_head, digest

RETENTION_FLOOR_DAYS = 365
WITNESS_EVENT = "RETENTION"
_ANCHORS = re.compile(r"ANCHORS JOURNAL (\d+) ([0-9a-f]{64}) DISSEMINATION (\d+) ([0-9a-f]{64})$")

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


def verify(conn: sqlite3.Connection) -> VerifyResult:
    """Check both chains (journal first) and their anchors inside one read snapshot."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    text_factory = conn.text_factory
    conn.text_factory = _lenient_text
    try:
        return _verify(conn)
    finally:
        conn.text_factory = text_factory
        if own:
            conn.execute("ROLLBACK")


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
    return VerifyResult(True, journal.checked, dissem.checked, head_seq=head[0], head_hash=head[1])


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
        counts[chain.table] = conn.execute(f"DELETE FROM {chain.table} WHERE seq <= ?", (last,)).rowcount
        conn.execute("INSERT INTO journal_anchor (chain, seq, hash, pruned_at, cutoff) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT(chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                     "pruned_at = excluded.pruned_at, cutoff = excluded.cutoff",
                     (chain.table, check.last_seq, check.last_hash, now, cutoff))
    return None
