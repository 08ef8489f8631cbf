"""Route: which handler answers a parsed, authorised message, and the reply it makes.

The route table (routes/routes.toml) is data: for each NCIC-style inquiry key,
the files it searches and the record sets (LEDS, NCIC) in reply order, and the
handler that serves them.  Handlers are plug-ins (lems.files.handlers).  A handler
that fails makes a ``.30.`` section of the reply, never a dead switch; when
every section fails the reply is an ``E`` frame ``.30.``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import attrs
import structlog

from lems.files import replies
from lems.base.errors import Reject
from lems.files.handlers import HandlerContext, HandlerError, load_handler_class
from lems.wire.message import Message

if TYPE_CHECKING:  # pragma: no cover
    from lems.base.registry import Operator
    from lems.core.session import Session
    from lems.core.switch import Switch


# Keys carried between agencies rather than answered from files.
DELIVERY_CATEGORIES = frozenset({"admin", "status", "hit-confirmation"})
MAINTENANCE_ACTIONS = frozenset({"enter", "modify", "cancel", "locate", "clear"})


class RouteError(Exception):
    """routes/routes.toml is wrong; the message names the entry."""


class HandlerTimeout(Exception):
    """A handler answered after ``[limits] handler_seconds``: its answer is not used."""


def timed(switch: "Switch", call: Any, *args: Any) -> Any:
    """``call(*args)``, or HandlerTimeout when it took longer than the handler budget.

    Handlers run on the reactor, so a slow one cannot be cut off while it runs;
    its late answer is thrown away and the reply says ``.30.`` for it, as for
    a handler that raised.  Time is the switch clock's monotonic time.
    """
    started = switch.clock.monotonic()
    result = call(*args)
    took = switch.clock.monotonic() - started
    budget = switch.settings.limits.handler_seconds
    if took > budget:
        raise HandlerTimeout(f"answered in {took:.2f} s, over the {budget:g} s budget")
    return result


@attrs.frozen
class InquiryRoute:
    keys: tuple[str, ...]
    files: tuple[str, ...]
    sets: tuple[str, ...]
    handler: str


@attrs.frozen
class MaintenanceRoute:
    """Where the entry, modify, cancel, locate and clear keys of a file go."""

    files: tuple[str, ...]
    record_set: str
    handler: str


@attrs.frozen
class StateRoute:
    """A state answering Nlets-style inquiries (RQ, DQ, KQ, IQ, FQ, AQ, BQ, CPQ).

    ``record_set`` is the data set its handler searches; ``file_sets`` overrides
    it per file (the home state answers criminal history from the LEDS file).
    ``ori`` is the answering ORI printed in the reply header.
    """

    code: str
    name: str
    ori: str
    handler: str
    record_set: str
    file_sets: Mapping[str, str] = attrs.field(factory=dict)

    def set_for(self, file: str) -> str:
        return self.file_sets.get(file, self.record_set)


@attrs.frozen
class RouteTable:
    handlers: Mapping[str, Mapping[str, Any]]
    inquiries: Mapping[str, InquiryRoute]
    maintenance: Mapping[str, MaintenanceRoute] = attrs.field(factory=dict)  # by file
    states: Mapping[str, StateRoute] = attrs.field(factory=dict)  # by state code, in table order

    @classmethod
    def load(cls, path: Path) -> "RouteTable":
        try:
            with path.open("rb") as f:
                raw = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RouteError(f"{path}: {exc}") from None
        handlers = {}
        for i, h in enumerate(raw.get("handler", []), 1):
            if "name" not in h or "use" not in h:
                raise RouteError(f"{path}: handler #{i} needs name and use")
            handlers[h["name"]] = h

        def section(name: str, build: Any) -> list[Any]:
            """Each entry of a [[name]] section built, naming the entry when a key is missing."""
            out = []
            for i, r in enumerate(raw.get(name, []), 1):
                try:
                    route = build(r)
                except KeyError as exc:
                    raise RouteError(f"{path}: {name} #{i} needs {exc.args[0]}") from None
                if route.handler not in handlers:
                    raise RouteError(f"{path}: {name} #{i} names unknown handler {route.handler!r}")
                out.append((i, route))
            return out

        inquiries = {key: route for _, route in section(
            "inquiry", lambda r: InquiryRoute(tuple(r["keys"]), tuple(r["files"]), tuple(r["sets"]), r["handler"]))
            for key in route.keys}
        maintenance = {file: route for _, route in section(
            "maintenance", lambda r: MaintenanceRoute(tuple(r["files"]), r["set"], r["handler"]))
            for file in route.files}
        states: dict[str, StateRoute] = {}
        for i, st in section("state", lambda r: StateRoute(r["code"], r.get("name", r["code"]), r["ori"],
                                                            r["handler"], r["set"], dict(r.get("file_sets", {})))):
            if len(st.code) != 2 or st.code == "NL":
                raise RouteError(f"{path}: state #{i} code {st.code!r} must be two letters other than NL")
            states[st.code] = st
        return cls(handlers, inquiries, maintenance, states)


class Router:
    def __init__(self, table: RouteTable, handlers: Mapping[str, Any], codec: Any, delivery: Any = None) -> None:
        self.table = table
        self.handlers = handlers
        self.codec = codec
        # Agency-to-agency traffic (AM, AML, SM, YQ, YR): queues, acknowledgements, hit confirmation.
        self.delivery = delivery
        self.log = structlog.get_logger("lems.core.router")

    @classmethod
    def from_home(cls, home: Path, settings: Any, codec: Any, store: Any, clock: Any) -> "Router":
        table = RouteTable.load(Path(home) / "routes" / "routes.toml")
        handlers = {}
        for name, spec in table.handlers.items():
            context = HandlerContext(Path(home), settings, codec, store, clock,
                                     {k: v for k, v in spec.items() if k not in ("name", "use")})
            try:
                handlers[name] = load_handler_class(spec["use"], Path(home))(context)
            except HandlerError as exc:
                raise RouteError(str(exc)) from exc
        from lems.traffic.delivery import Delivery  # builds on the session layer: only a whole switch needs it
        return cls(table, handlers, codec, delivery=Delivery.from_home(Path(home), settings, store))

    # -- the route step -------------------------------------------------------------

    def route(self, switch: "Switch", session: "Session", operator: "Operator", msg: Message, spec: Any,
              ref: str) -> tuple[str, str]:
        if self.delivery is not None and spec.category in DELIVERY_CATEGORIES:
            return self.delivery.route(switch, session, operator, msg, spec, ref)
        if spec.family == "nlets" and spec.action == "inquiry":
            from lems.traffic import nlets  # Nlets-style inquiries to states, NL fan-out
            return nlets.inquire(self, switch, session, operator, msg, spec, ref)
        if spec.action == "inquiry" and msg.mke in self.table.inquiries:
            return self.inquire(switch, msg, spec, self.table.inquiries[msg.mke])
        if spec.action in MAINTENANCE_ACTIONS and spec.file in self.table.maintenance:
            from lems.traffic import maintenance  # entry, modify, cancel, locate, clear
            return maintenance.maintain(self, switch, session, operator, msg, spec, ref,
                                        self.table.maintenance[spec.file])
        raise Reject(".01.", f"NO ROUTE FOR {msg.mke} ON THIS SWITCH")

    def inquire(self, switch: "Switch", msg: Message, spec: Any, route: InquiryRoute) -> tuple[str, str]:
        handler = self.handlers[route.handler]
        criteria = replies.criteria_text(msg, spec)
        lines: list[str] = []
        failed = 0
        for record_set in route.sets:
            hits = []
            section_failed = False
            blocks: list[str] = []
            for file in route.files:
                try:
                    for record in timed(switch, handler.inquire, msg, file, record_set):
                        hits.append(record)
                        # Inside the try: a plug-in's record the switch cannot show is its failure too.
                        blocks += replies.hit_block(record, self.codec.file(record.file),
                                                    switch.registry.agency_name(record.ori))
                except Exception as exc:  # a plug-in's failure is a .30. section, not a dead switch
                    section_failed = True
                    self.log.error("handler failed", handler=route.handler, file=file, record_set=record_set,
                                   error=repr(exc))
            if section_failed:
                failed += 1
                lines.append(f".30. {record_set} {replies.kind_word(self.codec, route.files[0])} "
                             f"FILE HANDLER UNAVAILABLE OR FAILED")
            elif not hits:
                lines.append(replies.no_record_line(record_set, replies.kind_word(self.codec, route.files[0]),
                                                    criteria))
            lines += blocks
        if failed == len(route.sets):
            raise Reject(".30.", f"FILE HANDLER UNAVAILABLE OR FAILED FOR {msg.mke}")
        return "R", "\n".join(lines)

    # -- delivery hooks (agency-to-agency traffic builds on these) ----------------------

    def acknowledge(self, switch: "Switch", session: "Session", msg: Message) -> str:
        if self.delivery is not None:
            return self.delivery.acknowledge(switch, session, msg)
        return f"ACK OSN/{msg.get('OSN', '')}"

    def tick(self, switch: "Switch") -> None:
        """Timers of routed traffic (hit confirmation)."""
        if self.delivery is not None:
            self.delivery.tick(switch)
