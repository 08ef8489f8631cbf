"""Remote systems behind a route: emulated systems the switch reaches by a destination ORI.

The Nlets states are one kind of remote (``[[state]]``, answered by file
handlers); a remote system of another kind is a ``[[remote]]`` entry of
routes/routes.toml::

    [[remote]]
    name = "NICS"            # how replies and the console name it
    ori = "WVNICS000"        # the destination ORI the switch reaches it by
    use = "nics"             # a built-in remote (REMOTES) or package.module:Class
    keys = ["QDP"]           # terminal keys it answers (routed to it by this step)

The class is built as ``Class(context)`` with a ``HandlerContext`` whose
``options`` are the entry's other keys, and follows ``Remote``:

* ``answer(msg)``: the reply lines for a terminal's key (``keys``);
* ``submit(msg)``: a message the switch itself sends it (NICS: ``EDP``, ``MDP``,
  ``XDP``), answered by one line, or ``RemoteRefused``;
* ``available()``: False while it is down (``RemoteUnavailable`` from the two above).

A remote keeps whatever state it has in the store (tables of its own), so it
is shared by every node and survives a restart like everything else.  The
first remote is the emulated NICS index (lems.traffic.nics).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import attrs
import structlog

from lems.base.errors import Reject
from lems.base.events import Outcome, Transaction
from lems.files.handlers import HandlerContext, HandlerError, load_handler_class
from lems.wire.message import Message

if TYPE_CHECKING:  # pragma: no cover
    from lems.traffic.routes import Routing

log = structlog.get_logger("lems.traffic.remotes")

# Built-in remotes, by the name a route table's ``use`` gives.
REMOTES = {"nics": "lems.traffic.nics:EmulatedNics"}


class RemoteUnavailable(Exception):
    """The remote system is down: nothing it was asked was done."""


class RemoteRefused(Exception):
    """The remote system refused a message (its reason, in its words)."""


class Remote(Protocol):
    name: str
    ori: str

    def available(self) -> bool: ...  # pragma: no cover

    def answer(self, msg: Message) -> Sequence[str]: ...  # pragma: no cover

    def submit(self, msg: Message) -> str: ...  # pragma: no cover


@attrs.frozen
class RemoteRoute:
    name: str
    ori: str
    use: str
    keys: tuple[str, ...] = ()
    options: Mapping[str, Any] = attrs.field(factory=dict)


def load_remotes(home: Path, routes: Sequence[RemoteRoute], settings: Any, codec: Any, store: Any,
                 clock: Any) -> dict[str, Any]:
    """Build every remote of the route table, by ORI (HandlerError with the reason when one cannot be)."""
    out: dict[str, Any] = {}
    for route in routes:
        spec = REMOTES.get(route.use, route.use)
        if ":" not in spec:
            raise HandlerError(f"no remote named {route.use!r} (built-in: {', '.join(REMOTES)}; or module:Class)")
        context = HandlerContext(Path(home), settings, codec, store, clock,
                                 {"name": route.name, "ori": route.ori, **route.options})
        out[route.ori] = load_handler_class(spec, Path(home))(context)
    return out


class RemoteInquiry:
    """The route step for terminal keys a remote answers (``[[remote]] keys``)."""

    def __init__(self, routing: "Routing") -> None:
        self.routing = routing
        self.by_key = {key: route.ori for route in routing.table.remotes.values() for key in route.keys}

    def takes(self, mke: str) -> bool:
        return mke in self.by_key

    def __call__(self, txn: Transaction) -> Outcome:
        msg = txn.message
        ori = self.by_key[msg.mke]
        remote = self.routing.remotes.get(ori)
        route = self.routing.table.remotes[ori]
        if remote is None or not remote.available():
            raise Reject(".30.", f"{ori} {route.name} UNAVAILABLE - NO ANSWER")
        try:
            lines = list(self.routing.timed(remote.answer, msg))
        except RemoteUnavailable:
            raise Reject(".30.", f"{ori} {route.name} UNAVAILABLE - NO ANSWER") from None
        except Exception as exc:  # noqa: BLE001 - a remote's failure is a .30. reply, never a dead switch
            log.error("remote failed", remote=ori, mke=msg.mke, error=repr(exc))
            raise Reject(".30.", f"{ori} {route.name} FAILED - NO ANSWER") from None
        return Outcome("R", "\n".join(lines))
