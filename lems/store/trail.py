"""The audit trail: journal records written inside the turn's transaction.

The one writer of the journal for the running switch.  A record about a
session carries the session's terminal, ORI, session id, address and operator
(read from the session object, whatever layer made it); the counters feed the
console's status.  Sessions, route steps and timers all write through it, so
none of them needs the switch.
"""

from __future__ import annotations

from typing import Any, Optional

from lems.store.journal import Journal


class AuditTrail:
    def __init__(self, store: Any, clock: Any) -> None:
        self.store = store
        self.journal = Journal(store.conn, clock)
        self.counters = {"in": 0, "out": 0}

    def record(self, kind: str, session: Optional[Any] = None, **fields: Any) -> int:
        """One journal record; returns its sequence number."""
        self.store.write()
        if kind in self.counters:
            self.counters[kind] += 1
        if session is not None:
            fields.setdefault("terminal", session.terminal.id)
            fields.setdefault("ori", session.terminal.ori)
            fields.setdefault("session", session.id)
            fields.setdefault("remote", session.remote)
            if session.operator is not None:
                fields.setdefault("operator", session.operator.id)
        return self.journal.append(kind, **fields)

    def disseminate(self, **fields: Any) -> int:
        """One criminal history inquiry in the dissemination log (PROTOCOL.md 7)."""
        self.store.write()
        return self.journal.disseminate(**fields)
