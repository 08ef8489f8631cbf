"""Route: which step answers a parsed, authorised message.

The steps are the traffic layer's (lems.traffic): each takes the frozen
``Transaction`` and returns an ``Outcome``.  The router only picks one, in the
order of ``Router.steps``: the first whose test takes the message's catalogue
entry.  A message no step takes is refused ``.01.``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from lems.base.errors import Reject
from lems.base.events import Notice, Outcome, Presence, Transaction
from lems.store.trail import AuditTrail
from lems.traffic.delivery import Administrative, Courier, load_groups
from lems.traffic.hits import HitConfirmation
from lems.traffic.inquiry import Inquiry
from lems.traffic.maintenance import Maintenance
from lems.traffic.nlets import NletsInquiry
from lems.traffic.routes import RouteError, RouteTable, Routing, load_handlers
from lems.traffic.validation import Validation

__all__ = ["RouteError", "RouteTable", "Router"]

MAINTENANCE_ACTIONS = frozenset({"enter", "modify", "cancel", "locate", "clear"})

Step = Callable[[Transaction], Outcome]


class Router:
    def __init__(self, routing: Routing) -> None:
        self.routing = routing
        self.table = routing.table
        self.handlers = routing.handlers
        self.codec = routing.codec
        # The durable queues (the console's depths and queue_for).
        self.delivery = routing.courier
        self.hits = HitConfirmation(routing)
        inquiry, maintenance = Inquiry(routing), Maintenance(routing)
        # Record validation (PROTOCOL.md 11): VCL, and VLN on any modify; its lists are scheduled jobs.
        self.validation = Validation(routing)
        # (name, takes(spec, mke), step): the first that takes the message answers it.
        self.steps: list[tuple[str, Callable[[Any, str], bool], Step]] = [
            ("hit confirmation", lambda spec, mke: spec.category == "hit-confirmation", self.hits),
            ("agency traffic", lambda spec, mke: spec.category in ("admin", "status"), Administrative(routing)),
            ("nlets inquiry", lambda spec, mke: spec.family == "nlets" and spec.action == "inquiry",
             NletsInquiry(routing)),
            ("inquiry", lambda spec, mke: spec.action == "inquiry" and inquiry.takes(mke), inquiry),
            ("validation", lambda spec, mke: self.validation.takes(spec), self.validation),
            ("maintenance", lambda spec, mke: spec.action in MAINTENANCE_ACTIONS and maintenance.takes(spec),
             self.validation.validating(maintenance)),
        ]

    @classmethod
    def from_home(cls, home: Path, settings: Any, codec: Any, store: Any, clock: Any,
                  trail: Optional[AuditTrail] = None) -> "Router":
        """The home's route table with its handlers and groups.

        ``trail`` is the running switch's audit trail (one writer per journal);
        a router built on its own (a plug-in test) gets one of its own.
        """
        home = Path(home)
        table = RouteTable.load(home / "routes" / "routes.toml")
        handlers = load_handlers(home, table, settings, codec, store, clock)
        routing = Routing(table, handlers, codec, settings, clock, store, trail or AuditTrail(store, clock),
                          Courier(store, settings, clock), load_groups(home / "routes" / "groups.toml"))
        return cls(routing)

    def step_for(self, spec: Any, mke: str) -> Step:
        for _, takes, step in self.steps:
            if takes(spec, mke):
                return step
        raise Reject(".01.", f"NO ROUTE FOR {mke} ON THIS SWITCH")

    def route(self, txn: Transaction) -> Outcome:
        return self.step_for(txn.spec, txn.message.mke)(txn)

    def tick(self, registry: Any, presence: Presence) -> list[Notice]:
        """The timers of routed traffic (hit confirmation): the notices they send."""
        return self.hits.tick(registry, presence)
