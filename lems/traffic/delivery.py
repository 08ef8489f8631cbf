"""Agency-to-agency traffic: AM, AML, SM, and the durable outbound queues (PROTOCOL.md 4.9, 5.3-5.5, 6).

Sans-IO and core-free.  A step plans its deliveries (``Courier.plan``): for
each terminal it decides, from who is connected and how full the queue is,
whether the frame is delivered now or queued, and returns ``Notice`` values
in its ``Outcome``; the core carries them out (written to a connected
terminal, else kept in the store, table ``outbound``, so queued traffic
survives a restart).  Hit confirmation (YQ, YR) is ``lems.traffic.hits``; it
delivers through the same queues.

Destinations (up to 5 per message, each one of):

* an ORI of an agency in the registry: its terminals;
* a state code (``OR``, ``WA``): every agency of that state in the registry;
* ``NL``: every agency in the registry;
* a broadcast group of ``routes/groups.toml`` (``APB``...).

A state code, ``NL`` or a group is a broadcast: it leaves out the sending agency
and the agencies that cannot take the key, and goes with broadcast priority.
An agency reached through two destinations gets one copy.

Per agency: an ORI-addressed message goes to every active terminal of the
agency.  Connected terminals get it at once; the others get it, in priority
order, when they next connect (also after a restart).  An agency of another
state with no terminal on this switch is reached through the Nlets emulation
(accepted and journaled; nothing further happens).  Refusals:

* ``.04.`` the agency is on remove status (nothing queued), or every terminal's
  queue is full (``[limits] queue_depth`` undelivered frames; never a silent drop);
* ``.01.`` unknown destination, an agency that does not take the key (AML goes
  to criminal justice agencies and service agencies under a management control
  agreement only; suspended and revoked agencies take nothing), a home-state
  agency with no active terminal, or a broadcast that reaches nobody.

Queue order: SM first, then hit confirmation, then ordinary traffic, then
broadcasts; first in, first out within a priority.

Delivery acknowledgement (``ack = true`` terminals): every frame the queues
carry to such a terminal stays in the store with its OSN and exact payload until
``ACK.<ORI>.OSN/<n>``; on reconnect it is sent again byte for byte (same OSN,
same time stamp).  Frames about the connection itself (banner, lock and
disconnect notices) are not kept: they mean nothing on a new connection.
Other terminals: a frame counts as delivered once written to the connection.

Texts (LF between lines; ``*<control>`` lines only when the sender gave one):

Delivered AM/AML (class ``U``) and SM (class ``S``)::

    AM.OR9990100.OR9990200        key . sending ORI . the destination it came through (ORI, state, group)
    *AMCTL00001
    TXT
    FOR LAW ENFORCEMENT DISSEMINATION ONLY      (AML only)
    PLEASE CALL RECORDS RE CASE ACC-0001        (the body as sent, case kept)

Reply to the sender (class ``R``), one line per agency reached or refused::

    AM ACCEPTED FOR OR9990200,APB
    *AMCTL00001
    OR9990200 QUEUED - NOT CONNECTED, WILL FORWARD
    OR9990100 DELIVERED
    WA9990100 SENT THROUGH NLETS
    OR999050H .01. AML NOT TAKEN BY OR999050H (NOT A LAW ENFORCEMENT AGENCY)
    OR9990100 DELIVERED, NOT QUEUED FOR T0100002 - QUEUE FULL

When nothing was delivered or queued, the reply is one ``E`` frame with the
first refusal's code.  When anything was queued, the sender also gets an ``S``
frame (with its input's REF) before the reply::

    .02. DESTINATION OUT OF SERVICE, MESSAGE QUEUED, WILL FORWARD - OR9990200
    *AMCTL00001
    ORIGINAL MESSAGE
    <first 100 characters of the input>

Answer to ``ACK`` (class ``R``): ``ACK OSN/00042 ACCEPTED``, or
``ACK OSN/00042 - NO FRAME AWAITING ACKNOWLEDGEMENT``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

import attrs
import structlog

from lems.base.clock import stamp
from lems.base.errors import ORIGINAL_LIMIT, Reject
from lems.base.events import (
    PRIORITY_BROADCAST,
    PRIORITY_ORDINARY,
    PRIORITY_STATUS,
    Note,
    Notice,
    Outcome,
    Presence,
    Transaction,
)
from lems.wire.message import Message

if TYPE_CHECKING:  # pragma: no cover
    from lems.base.registry import Agency, Registry
    from lems.traffic.routes import Routing

LE_ONLY_LINE = "FOR LAW ENFORCEMENT DISSEMINATION ONLY"
# Keys only law enforcement may receive (PROTOCOL.md 5.3: AML).
LE_ONLY_KEYS = frozenset({"AML"})
# Keys whose deliveries are switch status (class S) rather than traffic (class U).
STATUS_KEYS = frozenset({"SM"})

DELIVERED = "delivered"
QUEUED = "queued"

log = structlog.get_logger("lems.traffic.delivery")


class GroupError(ValueError):
    """routes/groups.toml is wrong; the message names the group."""


class QueueFull(Exception):
    """A terminal's queue holds ``depth`` undelivered frames already; nothing was queued."""

    def __init__(self, terminal: str, depth: int) -> None:
        self.terminal = terminal
        self.depth = depth
        super().__init__(f"QUEUE FOR {terminal} FULL ({depth} WAITING)")


@attrs.frozen
class Group:
    """A broadcast group: agencies matching every filter given, plus ``oris``."""

    name: str
    title: str
    states: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    control: bool = False
    oris: tuple[str, ...] = ()

    def members(self, agencies: Iterable["Agency"]) -> list["Agency"]:
        filtered = bool(self.states or self.types or self.control)
        out = []
        for a in agencies:
            matches = filtered and ((not self.states or "*" in self.states or a.state in self.states)
                                    and (not self.types or a.type in self.types)
                                    and (not self.control or a.control))
            if matches or a.ori in self.oris:
                out.append(a)
        return out


def load_groups(path: Path) -> dict[str, Group]:
    """routes/groups.toml; a home without one has no groups."""
    if not path.exists():
        return {}
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GroupError(f"{path}: {exc}") from None
    groups: dict[str, Group] = {}
    for i, g in enumerate(raw.get("group", []), 1):
        at = f"{path}: group #{i}"
        unknown = set(g) - {"name", "title", "states", "types", "control", "oris"}
        if unknown:
            raise GroupError(f"{at}: unknown setting(s) {', '.join(sorted(unknown))}")
        name = str(g.get("name", "")).upper()
        # 2 characters are state codes and 9 are ORIs: a group name must not be mistaken for either.
        if not (3 <= len(name) <= 8 and name.isalnum() and name.isascii()):
            raise GroupError(f"{at}: name must be 3 to 8 letters or digits")
        if name in groups:
            raise GroupError(f"{at}: {name} is defined twice")
        group = Group(name, str(g.get("title", name)), tuple(s.upper() for s in g.get("states", ())),
                      tuple(g.get("types", ())), bool(g.get("control", False)),
                      tuple(o.upper() for o in g.get("oris", ())))
        if not (group.states or group.types or group.control or group.oris):
            raise GroupError(f"{at}: {name} has no members (give states, types, control or oris)")
        groups[name] = group
    return groups


@attrs.frozen
class QueuedFrame:
    """One undelivered (or unacknowledged) frame, as the console shows it."""

    id: int
    terminal: str
    ori: str
    priority: int
    cls: str
    text: str
    queued: str
    osn: Optional[int]

    @property
    def awaiting_ack(self) -> bool:
        return self.osn is not None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "QueuedFrame":
        return cls(*row)


@attrs.frozen
class AgencyOutcome:
    """What became of one message for one agency."""

    ori: str
    delivered: tuple[str, ...] = ()   # terminals it was written to
    queued: tuple[str, ...] = ()      # terminals it waits for
    full: tuple[str, ...] = ()        # terminals whose queue refused it
    nlets: bool = False

    @property
    def reached(self) -> bool:
        return bool(self.delivered or self.queued or self.nlets)

    def line(self) -> str:
        if self.nlets:
            return f"{self.ori} SENT THROUGH NLETS"
        line = f"{self.ori} DELIVERED" if self.delivered else f"{self.ori} QUEUED - NOT CONNECTED, WILL FORWARD"
        if self.full:
            line += f", NOT QUEUED FOR {' '.join(self.full)} - QUEUE FULL"
        return line


class Courier:
    """The durable queues (table ``outbound``) and the plans that fill them."""

    def __init__(self, store: Any, settings: Any, clock: Any) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    def plan(self, registry: "Registry", presence: Presence) -> "Plan":
        return Plan(self, registry, presence)

    # -- the queue rows (the core carries notices out through these) ----------------------

    def depth(self, terminal_id: str) -> int:
        return self.store.conn.execute("SELECT COUNT(*) FROM outbound WHERE terminal = ?",
                                       (terminal_id,)).fetchone()[0]

    def hold(self, notice: Notice, osn: Optional[int] = None, payload: Optional[bytes] = None) -> None:
        """Keep a frame for its terminal: queued (no OSN yet) or written and awaiting ACK."""
        self.store.write().execute(
            "INSERT INTO outbound (terminal, ori, priority, cls, ref, text, queued, osn, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (notice.terminal, notice.ori, notice.priority, notice.cls, notice.ref, notice.text,
             stamp(self.clock.now()), osn, payload))

    def waiting(self, terminal_id: str) -> list["Waiting"]:
        """What waits for a terminal, highest priority first, first in first out within one."""
        rows = self.store.write().execute("SELECT id, cls, ref, text, osn, payload FROM outbound WHERE terminal = ? "
                                          "ORDER BY priority, id", (terminal_id,)).fetchall()
        return [Waiting(*row) for row in rows]

    def sent(self, row_id: int, osn: Optional[int] = None, payload: Optional[bytes] = None) -> None:
        """A waiting frame went out: kept with its OSN for an ack terminal, else gone."""
        conn = self.store.write()
        if osn is None:
            conn.execute("DELETE FROM outbound WHERE id = ?", (row_id,))
        else:
            conn.execute("UPDATE outbound SET osn = ?, payload = ? WHERE id = ?", (osn, payload, row_id))

    def acknowledge(self, terminal_id: str, osn: int) -> str:
        """``ACK.<ORI>.OSN/<n>``: the frame with that OSN is delivered."""
        conn = self.store.write()
        row = conn.execute("SELECT id FROM outbound WHERE terminal = ? AND osn = ? ORDER BY id LIMIT 1",
                           (terminal_id, osn)).fetchone()
        if row is None:
            return f"ACK OSN/{osn:05d} - NO FRAME AWAITING ACKNOWLEDGEMENT"
        conn.execute("DELETE FROM outbound WHERE id = ?", (row[0],))
        return f"ACK OSN/{osn:05d} ACCEPTED"

    # -- destinations ------------------------------------------------------------------------

    def destination_problem(self, registry: "Registry", ori: str, mke: str) -> Optional[Reject]:
        """Why an agency named as a destination takes no ``mke`` (None when it does)."""
        agency = registry.agency(ori)
        if agency is None:
            return Reject(".01.", f"UNKNOWN DESTINATION {ori}")
        if agency.status == "remove":
            return Reject(".04.", f"DESTINATION {ori} ON REMOVE STATUS, MESSAGE NOT QUEUED")
        if agency.status != "active":
            return Reject(".01.", f"DESTINATION {ori} IS {agency.status.upper()} AND TAKES NO TRAFFIC")
        if mke in LE_ONLY_KEYS and not (agency.criminal_justice or (agency.type == "service" and agency.serves)):
            return Reject(".01.", f"{mke} NOT TAKEN BY {ori} (NOT A LAW ENFORCEMENT AGENCY)")
        if agency.state == self.settings.state and not any(
                t.status == "active" for t in registry.terminals_of(ori)):
            return Reject(".01.", f"DESTINATION {ori} HAS NO ACTIVE TERMINAL")
        return None

    # -- the console --------------------------------------------------------------------

    def depths(self) -> dict[str, int]:
        """Terminal id -> frames waiting (queued or unacknowledged)."""
        return dict(self.store.conn.execute("SELECT terminal, COUNT(*) FROM outbound GROUP BY terminal "
                                            "ORDER BY terminal"))

    def queue_for(self, ori: str) -> list[QueuedFrame]:
        """Everything waiting for the terminals of one agency, in delivery order per terminal."""
        rows = self.store.conn.execute("SELECT id, terminal, ori, priority, cls, text, queued, osn FROM outbound "
                                       "WHERE ori = ? ORDER BY terminal, priority, id", (ori.upper(),))
        return [QueuedFrame.from_row(r) for r in rows]


@attrs.frozen
class Waiting:
    """A row of a terminal's queue, as the core sends it on connect."""

    id: int
    cls: str
    ref: str
    text: str
    osn: Optional[int]
    payload: Optional[bytes]


class Plan:
    """The deliveries of one step: what each terminal gets and whether it is there to get it.

    The plan decides now (who is connected, how full each queue is, counting
    what the plan itself adds) and the core carries out ``notices`` in order
    before the reply leaves, in the same reactor turn, so what the reply says
    (DELIVERED, QUEUED, QUEUE FULL) is what happens.
    """

    def __init__(self, courier: Courier, registry: "Registry", presence: Presence) -> None:
        self.courier = courier
        self.registry = registry
        self.presence = presence
        self.notices: list[Notice | Note] = []
        self._added: dict[str, int] = {}

    def to_terminal(self, terminal_id: str, cls: str, text: str, priority: int = PRIORITY_ORDINARY,
                    ref: str = "") -> str:
        """One frame for a terminal: ``DELIVERED`` or ``QUEUED``; ``QueueFull`` when its queue is full."""
        terminal = self.registry.terminals.get(terminal_id)
        if terminal is None:
            raise ValueError(f"unknown terminal {terminal_id}")
        live = self.presence.connected(terminal_id)
        if not live or terminal.ack:  # the frame is kept in the store: the queue must have room
            depth = self.courier.depth(terminal_id) + self._added.get(terminal_id, 0)
            if depth >= self.courier.settings.limits.queue_depth:
                raise QueueFull(terminal_id, depth)
            self._added[terminal_id] = self._added.get(terminal_id, 0) + 1
        self.notices.append(Notice(terminal_id, terminal.ori, cls, text, priority, ref, keep=terminal.ack))
        return DELIVERED if live else QUEUED

    def to_agency(self, ori: str, cls: str, text: str, priority: int, ref: str = "") -> AgencyOutcome:
        """One frame to every active terminal of an agency (see the module notes)."""
        terminals = [t for t in self.registry.terminals_of(ori) if t.status == "active"]
        if not terminals:
            agency = self.registry.agency(ori)
            return AgencyOutcome(ori, nlets=agency is not None and agency.state != self.courier.settings.state)
        delivered, queued, full = [], [], []
        for t in terminals:
            try:
                result = self.to_terminal(t.id, cls, text, priority, ref)
                (delivered if result == DELIVERED else queued).append(t.id)
            except QueueFull as exc:
                log.warning("queue full, frame refused", terminal=t.id, depth=exc.depth)
                full.append(t.id)
        return AgencyOutcome(ori, tuple(delivered), tuple(queued), tuple(full))

    def note(self, kind: str, **fields: Any) -> None:
        """A journal record, written when the notices planned so far have gone out."""
        self.notices.append(Note(kind, fields))

    def queued_notice(self, txn: Transaction, oris: Iterable[str]) -> None:
        """The sender's S .02. notice: its message waits for ``oris`` (AM, AML, Nlets inquiries to ORIs)."""
        try:
            self.to_terminal(txn.terminal.id, "S", queued_notice_text(txn.message, oris), PRIORITY_ORDINARY, txn.ref)
        except QueueFull:
            # The sender's own queue is full; its R reply still says QUEUED per destination.
            log.warning("sender queue full, .02. notice not kept", terminal=txn.terminal.id)

    def outcome(self, cls: str, text: str = "", **kw: Any) -> Outcome:
        return Outcome(cls, text, tuple(self.notices), **kw)


class Administrative:
    """The route step for AM, AML and SM."""

    def __init__(self, routing: "Routing") -> None:
        self.courier = routing.courier
        self.groups = routing.groups

    def expand(self, registry: "Registry", msg: Message, dest: str) -> tuple[list[str], bool]:
        """The agencies a destination names and whether it is a broadcast; a Reject when it names none."""
        problem_of = self.courier.destination_problem
        if len(dest) == 9:
            problem = problem_of(registry, dest, msg.mke)
            if problem is not None:
                raise problem
            return [dest], False
        agencies = registry.agencies.values()
        if dest == "NL":
            members, what = list(agencies), "NL"
        elif len(dest) == 2:
            members, what = [a for a in agencies if a.state == dest], f"STATE {dest}"
            if not members:
                raise Reject(".01.", f"NO AGENCY OF STATE {dest} ON THIS SWITCH")
        elif dest in self.groups:
            members, what = self.groups[dest].members(agencies), f"GROUP {dest}"
        else:
            raise Reject(".01.", f"UNKNOWN DESTINATION {dest} (NOT AN ORI, STATE CODE OR BROADCAST GROUP)")
        # A broadcast leaves out its sender and, quietly, the agencies that cannot take it.
        oris = [a.ori for a in members if a.ori != msg.ori and problem_of(registry, a.ori, msg.mke) is None]
        if not oris:
            raise Reject(".01.", f"{what} HAS NO DESTINATION THAT TAKES {msg.mke}")
        return oris, True

    def __call__(self, txn: Transaction) -> Outcome:
        msg = txn.message
        plan = self.courier.plan(txn.registry, txn.presence)
        cls = "S" if msg.mke in STATUS_KEYS else "U"
        outcomes: list[AgencyOutcome] = []
        refused: list[tuple[str, Reject]] = []
        seen: set[str] = set()
        for dest in msg.dests:
            try:
                oris, broadcast = self.expand(txn.registry, msg, dest)
            except Reject as reject:
                refused.append((dest, reject))
                continue
            if msg.mke in STATUS_KEYS:
                priority = PRIORITY_STATUS
            else:
                priority = PRIORITY_BROADCAST if broadcast else PRIORITY_ORDINARY
            text = delivery_text(msg, dest)
            for ori in oris:
                if ori in seen:
                    continue
                seen.add(ori)
                outcome = plan.to_agency(ori, cls, text, priority)
                if outcome.reached:
                    outcomes.append(outcome)
                else:
                    refused.append((ori, Reject(".04.", f"QUEUE FULL FOR {' '.join(outcome.full)}, "
                                                        "MESSAGE NOT QUEUED")))
        if not outcomes:
            first = refused[0][1]
            if len(refused) > 1:
                first = Reject(first.code, "; ".join(f"{r.code} {r.reason}" for _, r in refused))
            raise first
        queued = [o.ori for o in outcomes if o.queued and not o.delivered]
        if queued:
            plan.queued_notice(txn, queued)
        lines = [f"{msg.mke} ACCEPTED FOR {','.join(msg.dests)}"]
        if msg.control:
            lines.append(f"*{msg.control}")
        lines += [o.line() for o in outcomes]
        lines += [f"{dest} {r.code} {r.reason}" for dest, r in refused]
        return plan.outcome("R", "\n".join(lines))


def queued_notice_text(msg: Message, oris: Iterable[str]) -> str:
    lines = [f".02. DESTINATION OUT OF SERVICE, MESSAGE QUEUED, WILL FORWARD - {' '.join(oris)}"]
    if msg.control:
        lines.append(f"*{msg.control}")
    lines += ["ORIGINAL MESSAGE", msg.raw[:ORIGINAL_LIMIT]]
    return "\n".join(lines)


def delivery_text(msg: Message, addressed: str) -> str:
    """What a destination terminal receives for an AM, AML or SM."""
    lines = [f"{msg.mke}.{msg.ori}.{addressed}"]
    if msg.control:
        lines.append(f"*{msg.control}")
    lines.append("TXT")
    if msg.mke in LE_ONLY_KEYS:
        lines.append(LE_ONLY_LINE)
    lines.append(msg.body or "")
    return "\n".join(lines)
