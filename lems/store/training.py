"""Each operator's first sign-on (PROTOCOL.md 11): the training guide is due 10 days after it.

One row per operator in ``operator_training``, written at the operator's first accepted
sign-on (or first use through an interface terminal), inside that turn's transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional


def first_signon(conn: Any, operator: str) -> Optional[dt.date]:
    row = conn.execute("SELECT first_signon FROM operator_training WHERE operator = ?", (operator,)).fetchone()
    return dt.date.fromisoformat(row[0]) if row else None


def note_signon(conn: Any, operator: str, day: dt.date) -> dt.date:
    """Keep ``day`` as the operator's first sign-on unless one is kept already; the kept day."""
    conn.execute("INSERT OR IGNORE INTO operator_training (operator, first_signon) VALUES (?, ?)",
                 (operator, day.isoformat()))
    found = first_signon(conn, operator)
    assert found is not None
    return found
