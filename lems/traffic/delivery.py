"""Agency-to-agency traffic: AM, AML, SM, and the durable outbound queues (PROTOCOL.md 4.9, 5.3-5.5, 6).

Sans-IO: it reaches live terminals through ``switch.hub`` and keeps everything
that has not been delivered in the store (table ``outbound``), so queued traffic
survives a restart.  Hit confirmation (YQ, YR) is ``lems.traffic.hits``; it delivers
through the same queues.

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

from lems.traffic import hits as hits_mod
from lems.base.clock import stamp
from lems.base.errors import ORIGINAL_LIMIT, Reject
from lems.wire.message import Message
from lems.core.session import Send, State

if TYPE_CHECKING:  # pragma: no cover
    from lems.base.registry import Agency, Operator
    from lems.core.session import Session
    from lems.core.switch import Switch

# Queue priorities: lower goes first.
PRIORITY_STATUS = 0       # SM
PRIORITY_HIT = 1          # YQ, YR and hit confirmation notices
PRIORITY_ORDINARY = 2     # AM, AML to named ORIs; notices (.02., locate)
PRIORITY_BROADCAST = 3    # AM, AML to a state, NL or a group

LE_ONLY_LINE = "FOR LAW ENFORCEMENT DISSEMINATION ONLY"
# Keys only law enforcement may receive (PROTOCOL.md 5.3: AML).
LE_ONLY_KEYS = frozenset({"AML"})
# Keys whose deliveries are switch status (class S) rather than traffic (class U).
STATUS_KEYS = frozenset({"SM"})

DELIVERED = "delivered"
QUEUED = "queued"



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


class Delivery:
    """The router's component for admin, status and hit-confirmation keys."""

    def __init__(self, store: Any, settings: Any, groups: dict[str, Group]) -> None:
        self.store = store
        self.settings = settings
        self.groups = groups
        self.hits = hits_mod.HitConfirmation(store, settings)
        self.log = structlog.get_logger("lems.traffic.delivery")

    @classmethod
    def from_home(cls, home: Path, settings: Any, store: Any) -> "Delivery":
        return cls(store, settings, load_groups(Path(home) / "routes" / "groups.toml"))

    # -- the router's hooks ---------------------------------------------------------

    def route(self, switch: "Switch", session: "Session", operator: "Operator", msg: Message, spec: Any,
              ref: str) -> tuple[str, str]:
        if spec.category == "hit-confirmation":
            return self.hits.route(switch, session, msg, ref, self)
        return self.administrative(switch, session, msg, ref)

    def acknowledge(self, switch: "Switch", session: "Session", msg: Message) -> str:
        if msg.ori not in switch.registry.oris_for(session.terminal):
            raise Reject(".21.", f"TERMINAL {session.terminal.id} IS NOT AUTHORIZED TO SEND FOR ORI {msg.ori}")
        osn = int(msg.get("OSN", "0") or 0)
        conn = self.store.write()
        row = conn.execute("SELECT id FROM outbound WHERE terminal = ? AND osn = ? ORDER BY id LIMIT 1",
                           (session.terminal.id, osn)).fetchone()
        if row is None:
            return f"ACK OSN/{osn:05d} - NO FRAME AWAITING ACKNOWLEDGEMENT"
        conn.execute("DELETE FROM outbound WHERE id = ?", (row[0],))
        return f"ACK OSN/{osn:05d} ACCEPTED"

    def tick(self, switch: "Switch") -> None:
        self.hits.tick(switch, self)

    def session_started(self, switch: "Switch", session: "Session") -> None:
        """A terminal connected: send what waits for it, highest priority first (the link's hook)."""
        terminal = session.terminal
        conn = self.store.write()
        rows = conn.execute("SELECT id, cls, ref, text, osn, payload FROM outbound WHERE terminal = ? "
                            "ORDER BY priority, id", (terminal.id,)).fetchall()
        sends: list[Send] = []
        for row_id, cls, ref, text, osn, payload in rows:
            if osn is not None:
                # Unacknowledged: the very frame again, same OSN (PROTOCOL.md 4.9).
                sends.append(Send(bytes(payload), osn, cls))
                switch.audit("out", session, ref=ref, cls=cls, osn=osn, text=text, nbytes=len(payload),
                             event="RESENT, AWAITING ACK")
                continue
            send = session.emit(cls, text, ref)
            sends.append(send)
            if terminal.ack:
                conn.execute("UPDATE outbound SET osn = ?, payload = ? WHERE id = ?", (send.osn, send.payload, row_id))
            else:
                conn.execute("DELETE FROM outbound WHERE id = ?", (row_id,))
        if sends:
            switch.hub.write(terminal.id, sends)

    # -- delivering ------------------------------------------------------------------

    def enqueue(self, switch: "Switch", terminal_id: str, cls: str, text: str, priority: int = PRIORITY_ORDINARY,
                ref: str = "") -> str:
        """Deliver one frame to a terminal now if connected, else keep it for the terminal.

        Returns ``DELIVERED`` or ``QUEUED``; raises ``QueueFull`` (nothing kept)
        when the terminal already has ``[limits] queue_depth`` frames waiting.
        """
        terminal = switch.registry.terminals.get(terminal_id)
        if terminal is None:
            raise ValueError(f"unknown terminal {terminal_id}")
        session = switch.hub.live(terminal_id)
        live = session is not None and session.state is not State.CLOSED
        if live and not terminal.ack:
            switch.hub.write(terminal_id, [session.emit(cls, text, ref)])
            return DELIVERED
        conn = self.store.write()
        depth = conn.execute("SELECT COUNT(*) FROM outbound WHERE terminal = ?", (terminal_id,)).fetchone()[0]
        if depth >= self.settings.limits.queue_depth:
            raise QueueFull(terminal_id, depth)
        osn, payload = None, None
        if live:
            send = session.emit(cls, text, ref)
            osn, payload = send.osn, send.payload
        conn.execute("INSERT INTO outbound (terminal, ori, priority, cls, ref, text, queued, osn, payload) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (terminal_id, terminal.ori, priority, cls, ref, text, stamp(switch.clock.now()), osn, payload))
        if live:
            switch.hub.write(terminal_id, [Send(payload, osn, cls)])
            return DELIVERED
        return QUEUED

    def deliver_to_agency(self, switch: "Switch", ori: str, cls: str, text: str, priority: int,
                          ref: str = "") -> AgencyOutcome:
        """One frame to every active terminal of an agency (see the module notes)."""
        terminals = [t for t in switch.registry.terminals_of(ori) if t.status == "active"]
        if not terminals:
            agency = switch.registry.agency(ori)
            return AgencyOutcome(ori, nlets=agency is not None and agency.state != self.settings.state)
        delivered, queued, full = [], [], []
        for t in terminals:
            try:
                result = self.enqueue(switch, t.id, cls, text, priority, ref)
                (delivered if result == DELIVERED else queued).append(t.id)
            except QueueFull as exc:
                self.log.warning("queue full, frame refused", terminal=t.id, depth=exc.depth)
                full.append(t.id)
        return AgencyOutcome(ori, tuple(delivered), tuple(queued), tuple(full))

    def destination_problem(self, switch: "Switch", ori: str, mke: str) -> Optional[Reject]:
        """Why an agency named as a destination takes no ``mke`` (None when it does)."""
        agency = switch.registry.agency(ori)
        if agency is None:
            return Reject(".01.", f"UNKNOWN DESTINATION {ori}")
        if agency.status == "remove":
            return Reject(".04.", f"DESTINATION {ori} ON REMOVE STATUS, MESSAGE NOT QUEUED")
        if agency.status != "active":
            return Reject(".01.", f"DESTINATION {ori} IS {agency.status.upper()} AND TAKES NO TRAFFIC")
        if mke in LE_ONLY_KEYS and not (agency.criminal_justice or (agency.type == "service" and agency.serves)):
            return Reject(".01.", f"{mke} NOT TAKEN BY {ori} (NOT A LAW ENFORCEMENT AGENCY)")
        if agency.state == self.settings.state and not any(
                t.status == "active" for t in switch.registry.terminals_of(ori)):
            return Reject(".01.", f"DESTINATION {ori} HAS NO ACTIVE TERMINAL")
        return None

    def expand(self, switch: "Switch", msg: Message, dest: str) -> tuple[list[str], bool]:
        """The agencies a destination names and whether it is a broadcast; a Reject when it names none."""
        if len(dest) == 9:
            problem = self.destination_problem(switch, dest, msg.mke)
            if problem is not None:
                raise problem
            return [dest], False
        agencies = switch.registry.agencies.values()
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
        oris = [a.ori for a in members
                if a.ori != msg.ori and self.destination_problem(switch, a.ori, msg.mke) is None]
        if not oris:
            raise Reject(".01.", f"{what} HAS NO DESTINATION THAT TAKES {msg.mke}")
        return oris, True

    # -- AM, AML, SM -------------------------------------------------------------------

    def administrative(self, switch: "Switch", session: "Session", msg: Message, ref: str) -> tuple[str, str]:
        cls = "S" if msg.mke in STATUS_KEYS else "U"
        outcomes: list[AgencyOutcome] = []
        refused: list[tuple[str, Reject]] = []
        seen: set[str] = set()
        for dest in msg.dests:
            try:
                oris, broadcast = self.expand(switch, msg, dest)
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
                outcome = self.deliver_to_agency(switch, ori, cls, text, priority)
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
            self.notify_queued(switch, session, msg, ref, queued)
        lines = [f"{msg.mke} ACCEPTED FOR {','.join(msg.dests)}"]
        if msg.control:
            lines.append(f"*{msg.control}")
        lines += [o.line() for o in outcomes]
        lines += [f"{dest} {r.code} {r.reason}" for dest, r in refused]
        return "R", "\n".join(lines)

    def queued_notice_text(self, msg: Message, oris: Iterable[str]) -> str:
        lines = [f".02. DESTINATION OUT OF SERVICE, MESSAGE QUEUED, WILL FORWARD - {' '.join(oris)}"]
        if msg.control:
            lines.append(f"*{msg.control}")
        lines += ["ORIGINAL MESSAGE", msg.raw[:ORIGINAL_LIMIT]]
        return "\n".join(lines)

    def notify_queued(self, switch: "Switch", session: "Session", msg: Message, ref: str,
                      oris: list[str]) -> None:
        """The sender's S .02. notice: its message waits for ``oris`` (AM, AML, Nlets inquiries to ORIs)."""
        try:
            self.enqueue(switch, session.terminal.id, "S", self.queued_notice_text(msg, oris), PRIORITY_ORDINARY,
                         ref)
        except QueueFull:
            # The sender's own queue is full; its R reply still says QUEUED per destination.
            self.log.warning("sender queue full, .02. notice not kept", terminal=session.terminal.id)

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

    def open_hits(self) -> list["hits_mod.HitRequest"]:
        return self.hits.open_hits()


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
