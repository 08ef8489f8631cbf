"""The store: the switch's durable state, the schema, and the audit journal.

The bottom layer above ``lems.base``: it imports nothing of lems but
``lems.base``.  Its modules:

* ``sqlite``: ``Store``, the embedded SQLite backend (WAL, ``synchronous=FULL``);
* ``schema``: every table, as numbered migrations applied in order at open;
* ``chain``, ``integrity``, ``query``: the hash-chained journal and dissemination
  log (append; verify and prune; search and export), all named by ``journal``;
* ``retention``: ``Retention``, ``[audit] retention_days`` kept once a day;
* ``head``: the journal's signed head file beside the database, written with
  every commit, so that a cut tail or a moved anchor shows (``verify``).

The interface a backend implements
----------------------------------

Nothing above this layer knows which backend it has; a second one (PostgreSQL,
for several nodes: PROTOCOL.md 12) provides the same object:

``Store.open(location, migrations=None) -> Store``
    Open (creating if need be) and apply the migrations not yet recorded in
    ``schema_migrations``, each in its own transaction.
``conn``
    The DB-API connection.  Reads use it directly; so do writes, but only
    after ``write()``.  The SQL above the store uses ``?`` parameters and the
    SQL that SQLite and PostgreSQL share (``INSERT ... ON CONFLICT ... DO
    UPDATE``, ``SAVEPOINT``); a second backend either gives a connection that
    accepts that (an adapter for the parameter style) or moves those queries
    behind methods here.
``write() -> conn``
    The connection inside the current turn's transaction, opened on first use.
    Everything the switch changes while handling one reactor turn goes in it.
``commit()``
    Make the turn durable (the OSN counters given out in it included) before
    any reply that depends on it leaves: one commit, one fsync, per turn.  A
    file store first writes its signed head file (one page, in place), naming
    the state committed and the state about to be.
``rollback()``
    Drop the turn, and the OSNs given out in it.
``transaction(work) -> result``
    ``work(write())`` then ``commit()``: an administrative change outside the
    hot path (the console, retention).
``peek_osn(terminal) -> int`` / ``next_osn(terminal) -> int``
    The per-terminal output sequence number (00001-99999, wrapping): the one
    the next frame will get, and take it.  Gap-free per terminal across
    restarts; with several nodes, across nodes.
``close()``
    Commit what is pending and close.

The journal modules also lean on SQLite itself, and a second backend gives
them the same facts: ``AUTOINCREMENT`` sequence numbers and the highest one
ever handed out (``sqlite_sequence``, for removals at the end), ``lastrowid``
after an insert, and ``text_factory`` (tampered bytes must be read, not raise).
"""

from lems.store.retention import Retention
from lems.store.sqlite import Store

__all__ = ["Retention", "Store"]
