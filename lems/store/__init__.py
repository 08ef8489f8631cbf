"""The store: the switch's durable state, the schema, and the audit journal.

The bottom layer: it imports nothing of lems but ``lems.base``.  One interface
(``Store``: a connection, the turn's transaction, output sequence numbers)
that a second backend can implement; the schema and its migrations are in
``schema``; the hash-chained journal (append, verify, prune, search, export)
in ``journal``.
"""

from lems.store.sqlite import Store

__all__ = ["Store"]
