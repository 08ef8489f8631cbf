"""Record maintenance: entry, modify, cancel, locate and clear (PROTOCOL.md 5.1, 5.2, 5.6).

The route table's ``[[maintenance]]`` entry names, for each file that takes
entries, the record set entries go into (``LEDS``) and the handler that keeps
them.  ``maintain`` calls the handler method the key's action names and turns
what happens into the reply:

* entry accepted (``R``)::

      OR9990100
      EW ACCEPTED - WANTED PERSON ENTERED
      NAM/TESTER, ACCEPT A
      NIC/W000100000 OCA/ACC-0001

* modify, cancel, locate, clear accepted (``R``)::

      OR9990200
      LW ACCEPTED - LOCATE WANTED PERSON
      NAM/TESTER, ACCEPT A
      NIC/W000100000 OCA/ACC-0001

* duplicate entry (``E``): ``REJECT ON FILE`` then the record on file, as in a hit;
* the record to change is not on file (``E``): ``REJECT NOT ON FILE`` and the NIC,
  NAM and OCA asked for;
* modify, cancel or clear from another ORI than the entering one: ``.22.``;
* a handler that does not take the action: ``.01.``; a handler that fails: ``.30.``
  (logged; the switch goes on answering).

After a locate the entering agency's terminals get a ``U`` notice (queued for
those not connected)::

      LOCATE NOTICE - WANTED PERSON
      NIC/W000100000 OCA/ACC-0001
      NAM/TESTER, ACCEPT A
      LOCATED BY ORI OR9990200 DOL/20260102 LCA/ACC-L-1

A handler call runs inside a savepoint of the turn's transaction: when it fails,
what it wrote to the store is undone and the reply is ``.30.``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import structlog

from lems.base.errors import Reject
from lems.base.events import PRIORITY_ORDINARY, Outcome, Transaction
from lems.files import replies
from lems.files.handlers import NotOnFile, NotYours, OnFile
from lems.wire.message import Record

if TYPE_CHECKING:  # pragma: no cover
    from lems.traffic.delivery import Plan
    from lems.traffic.routes import Routing

log = structlog.get_logger("lems.traffic.maintenance")

# What a refusal says the entering agency alone may do.
VERBS = {"enter": "ENTER", "modify": "MODIFY", "cancel": "CANCEL", "locate": "LOCATE", "clear": "CLEAR"}

_savepoints = itertools.count(1)


class Maintenance:
    """The route step for entry, modify, cancel, locate and clear keys."""

    def __init__(self, routing: "Routing") -> None:
        self.routing = routing

    def takes(self, spec: Any) -> bool:
        return spec.file in self.routing.table.maintenance

    def __call__(self, txn: Transaction) -> Outcome:
        """Run one maintenance message through its handler."""
        msg, spec, routing = txn.message, txn.spec, self.routing
        mroute = routing.table.maintenance[spec.file]
        action = spec.action
        file = routing.codec.file(spec.file)
        handler = routing.handlers.get(mroute.handler)
        method = getattr(handler, action, None) if handler is not None else None
        if not callable(method):
            raise Reject(".01.", f"{msg.mke} NOT TAKEN - THE {file.title} FILE HANDLER DOES NOT "
                                 f"{VERBS.get(action, action.upper())} RECORDS")
        try:
            record = self._call(method, msg, spec.file, mroute.record_set)
        except OnFile as exc:
            on_file = exc.record
            return Outcome("E", "\n".join(replies.reject_on_file(on_file, routing.codec.file(on_file.file),
                                                                  txn.registry.agency_name(on_file.ori),
                                                                  routing.codec.catalogue.cautions)))
        except NotOnFile:
            return Outcome("E", "\n".join(replies.reject_not_on_file(msg)))
        except NotYours as exc:
            raise Reject(".22.", f"NOT AUTHORIZED - ONLY THE ENTERING AGENCY {exc.record.ori} MAY "
                                 f"{VERBS.get(action, action.upper())} NIC/{exc.record.nic}") from None
        except Exception as exc:  # noqa: BLE001 - a plug-in's failure is a .30. reply, never a dead switch
            log.error("handler failed", handler=mroute.handler, mke=msg.mke, file=spec.file, action=action,
                      record_set=mroute.record_set, error=repr(exc))
            raise Reject(".30.", f"FILE HANDLER UNAVAILABLE OR FAILED FOR {msg.mke}") from None
        if not isinstance(record, Record):
            log.error("handler returned no record", handler=mroute.handler, mke=msg.mke, action=action,
                      returned=type(record).__name__)
            raise Reject(".30.", f"FILE HANDLER UNAVAILABLE OR FAILED FOR {msg.mke}")
        if action == "enter":
            return Outcome("R", "\n".join(replies.entry_accepted(msg, file, record.nic)))
        plan = routing.courier.plan(txn.registry, txn.presence)
        if action == "locate":
            self._locate_notice(plan, txn, record)
        return plan.outcome("R", "\n".join(replies.maintenance_ack(msg, spec, file, record)))

    def _call(self, method: Any, msg: Any, file: str, record_set: str) -> Record:
        """The handler call, its store writes undone when it raises anything but a refusal."""
        name = f"maintain_{next(_savepoints)}"
        conn = self.routing.store.write()
        conn.execute(f"SAVEPOINT {name}")
        try:
            record = method(msg, file, record_set)
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return record

    def _locate_notice(self, plan: "Plan", txn: Transaction, record: Record) -> None:
        """Tell every terminal of the entering agency (queued when not connected)."""
        msg = txn.message
        text = "\n".join(replies.locate_notice(record, self.routing.codec.file(record.file), msg.ori, msg))
        try:
            outcome = plan.to_agency(record.ori, "U", text, PRIORITY_ORDINARY)
        except Exception as exc:  # noqa: BLE001 - the locate is on file; a notice that cannot go is logged
            log.error("locate notice not sent", nic=record.nic, ori=record.ori, error=repr(exc))
            return
        log.info("locate notice", nic=record.nic, ori=record.ori, by=msg.ori,
                 delivered=list(outcome.delivered), queued=list(outcome.queued))
