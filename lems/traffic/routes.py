"""The route table and what every route step shares.

routes/routes.toml is data: for each NCIC-style inquiry key, the files it
searches and the record sets (LEDS, NCIC) in reply order, and the handler that
serves them; the files that take entries and where they go; the states that
answer Nlets-style inquiries.  ``Routing`` is the deployment the steps are
built with: the table, the loaded handlers, the catalogues, the courier that
plans deliveries, the audit trail, the settings and the clock.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping

import attrs
import structlog

from lems.files.handlers import HandlerContext, HandlerError, load_handler_class
from lems.traffic.remotes import RemoteRoute, load_remotes

class RouteError(Exception):
    """routes/routes.toml is wrong; the message names the entry."""


class HandlerTimeout(Exception):
    """A handler answered after ``[limits] handler_seconds``: its answer is not used."""


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


# The [[remote]] entries of a routes.toml that has none (an older home): the emulated NICS.
DEFAULT_REMOTES = [{"name": "NICS", "ori": "WVNICS000", "use": "nics", "keys": ["QDP"]}]


@attrs.frozen
class RouteTable:
    handlers: Mapping[str, Mapping[str, Any]]
    inquiries: Mapping[str, InquiryRoute]
    maintenance: Mapping[str, MaintenanceRoute] = attrs.field(factory=dict)  # by file
    states: Mapping[str, StateRoute] = attrs.field(factory=dict)  # by state code, in table order
    remotes: Mapping[str, RemoteRoute] = attrs.field(factory=dict)  # by ORI (lems.traffic.remotes)

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
        remotes: dict[str, RemoteRoute] = {}
        # A route table written before remotes existed reaches the emulated NICS all the same.
        for i, r in enumerate(raw.get("remote", DEFAULT_REMOTES), 1):
            at = f"{path}: remote #{i}"
            try:
                route = RemoteRoute(str(r["name"]), str(r["ori"]).upper(), str(r["use"]),
                                    tuple(str(k).upper() for k in r.get("keys", ())),
                                    {k: v for k, v in r.items() if k not in ("name", "ori", "use", "keys")})
            except KeyError as exc:
                raise RouteError(f"{at} needs {exc.args[0]}") from None
            if len(route.ori) != 9 or not route.ori.isalnum():
                raise RouteError(f"{at}: ori {route.ori!r} must be 9 letters or digits")
            if route.ori in remotes:
                raise RouteError(f"{at}: ori {route.ori} is listed twice")
            taken = {k for other in remotes.values() for k in other.keys} & set(route.keys)
            if taken:
                raise RouteError(f"{at}: key(s) {', '.join(sorted(taken))} already go to another remote")
            remotes[route.ori] = route
        return cls(handlers, inquiries, maintenance, states, remotes)


@attrs.define
class Routing:
    """What the route steps are built with (one per loaded route table)."""

    table: RouteTable
    handlers: Mapping[str, Any]
    codec: Any
    settings: Any
    clock: Any
    store: Any
    trail: Any            # lems.store.trail.AuditTrail
    courier: Any          # lems.traffic.delivery.Courier
    groups: Mapping[str, Any] = attrs.field(factory=dict)
    remotes: Mapping[str, Any] = attrs.field(factory=dict)  # the remote systems by ORI (lems.traffic.remotes)

    def timed(self, call: Any, *args: Any) -> Any:
        """``call(*args)``, or HandlerTimeout when it took longer than the handler budget.

        Handlers run on the reactor, so a slow one cannot be cut off while it runs;
        its late answer is thrown away and the reply says ``.30.`` for it, as for
        a handler that raised.  Time is the switch clock's monotonic time.
        """
        started = self.clock.monotonic()
        result = call(*args)
        took = self.clock.monotonic() - started
        budget = self.settings.limits.handler_seconds
        if took > budget:
            raise HandlerTimeout(f"answered in {took:.2f} s, over the {budget:g} s budget")
        return result


def build_remotes(home: Path, table: RouteTable, settings: Any, codec: Any, store: Any,
                  clock: Any) -> dict[str, Any]:
    """Build every remote system the table names (RouteError with the reason when one cannot be)."""
    try:
        return load_remotes(Path(home), list(table.remotes.values()), settings, codec, store, clock)
    except HandlerError as exc:
        raise RouteError(str(exc)) from exc


def load_handlers(home: Path, table: RouteTable, settings: Any, codec: Any, store: Any,
                  clock: Any) -> dict[str, Any]:
    """Build every handler the table names (RouteError with the reason when one cannot be)."""
    handlers = {}
    for name, spec in table.handlers.items():
        context = HandlerContext(Path(home), settings, codec, store, clock,
                                 {k: v for k, v in spec.items() if k not in ("name", "use")})
        try:
            handlers[name] = load_handler_class(spec["use"], Path(home))(context)
        except HandlerError as exc:
            raise RouteError(str(exc)) from exc
    return handlers


log = structlog.get_logger("lems.traffic")
