"""NCIC-style inquiries (QW, QV, QG...): the files and record sets of the route table.

For the key's ``[[inquiry]]`` entry, each record set (LEDS, then NCIC) is
searched in every file the entry lists, and the reply has one section per set
(PROTOCOL.md 5.2): when the entry searches more than one set, the section starts
with its heading line (``LEDS RESPONSE``, ``NCIC RESPONSE``), then a hit block
per record found, or the no-record line::

    LEDS RESPONSE
    NO LEDS WANT NAM/DOE, JOHN Q DOB/19800101
    NCIC RESPONSE
    MKE/WANTED PERSON
    ...  A handler that fails
makes a ``.30.`` section, never a dead switch; when every section fails the
reply is an ``E`` frame ``.30.``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from lems.base.errors import Reject
from lems.base.events import Outcome, Transaction
from lems.files import replies

if TYPE_CHECKING:  # pragma: no cover
    from lems.traffic.routes import Routing

log = structlog.get_logger("lems.traffic.inquiry")


class Inquiry:
    """The route step for the keys of ``[[inquiry]]`` entries."""

    def __init__(self, routing: "Routing") -> None:
        self.routing = routing

    def takes(self, mke: str) -> bool:
        return mke in self.routing.table.inquiries

    def __call__(self, txn: Transaction) -> Outcome:
        msg, spec, routing = txn.message, txn.spec, self.routing
        route = routing.table.inquiries[msg.mke]
        handler = routing.handlers[route.handler]
        codec = routing.codec
        criteria = replies.criteria_text(msg, spec)
        lines: list[str] = []
        failed = 0
        headed = len(route.sets) > 1
        for record_set in route.sets:
            if headed:
                lines.append(replies.section_heading(record_set))
            hits = []
            section_failed = False
            blocks: list[str] = []
            for file in route.files:
                try:
                    for record in routing.timed(handler.inquire, msg, file, record_set):
                        hits.append(record)
                        # Inside the try: a plug-in's record the switch cannot show is its failure too.
                        blocks += replies.hit_block(record, codec.file(record.file),
                                                    txn.registry.agency_name(record.ori))
                except Exception as exc:  # a plug-in's failure is a .30. section, not a dead switch
                    section_failed = True
                    log.error("handler failed", handler=route.handler, file=file, record_set=record_set,
                              error=repr(exc))
            if section_failed:
                failed += 1
                lines.append(f".30. {record_set} {replies.kind_word(codec, route.files[0])} "
                             f"FILE HANDLER UNAVAILABLE OR FAILED")
            elif not hits:
                lines.append(replies.no_record_line(record_set, replies.kind_word(codec, route.files[0]), criteria))
            lines += blocks
        if failed == len(route.sets):
            raise Reject(".30.", f"FILE HANDLER UNAVAILABLE OR FAILED FOR {msg.mke}")
        return Outcome("R", "\n".join(lines))
