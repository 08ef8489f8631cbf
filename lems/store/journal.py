"""The audit journal: every frame in and out, every security and console event.

The journal is data that must never be lost or quietly changed (CJIS-style
transaction log), so it lives in the switch's store and each record is
hash-chained to its predecessor.  It is three modules, and this one names
them all so that callers need only ``lems.store.journal``:

* ``lems.store.chain``: the chains, the record hash, appends (``Journal``: append,
  head, the dissemination log's ``disseminate``);
* ``lems.store.integrity``: ``verify`` and ``prune`` (the retention anchor and the
  RETENTION record that vouches for it);
* ``lems.store.query``: ``search``, ``search_disseminations``, ``frames``, ``export``.

``lems.store.retention.Retention`` runs ``prune`` once a switch-clock day.
"""

from __future__ import annotations

from lems.store.chain import CHAINS, CLASSES, DISSEMINATION, GENESIS, JOURNAL, KINDS, Chain, Journal, digest
from lems.store.integrity import RETENTION_FLOOR_DAYS, WITNESS_EVENT, PruneResult, VerifyResult, prune, verify
from lems.store.query import (Dissemination, Record, When, export, frames, parse_stamp, parse_when, search,
                              search_disseminations)

__all__ = [
    "CHAINS", "CLASSES", "DISSEMINATION", "GENESIS", "JOURNAL", "KINDS", "Chain", "Journal", "digest",
    "RETENTION_FLOOR_DAYS", "WITNESS_EVENT", "PruneResult", "VerifyResult", "prune", "verify",
    "Dissemination", "Record", "When", "export", "frames", "parse_stamp", "parse_when", "search",
    "search_disseminations",
]
