"""Nlets-style inquiries: RQ, DQ, KQ, IQ, FQ, AQ, BQ, CPQ (PROTOCOL.md 5.3).

    MKE.ORI.DEST[,DEST...].[*CONTROL.]TXT<body>

Policy (5.6) has already passed when the router calls ``inquire``.  Every
destination, in the order given, makes one section of a single ``R`` frame;
sections are separated by an empty line.

* A state code of the route table (``[[state]]``): that state's handler is asked
  for the key's file in the state's record set (``StateRoute.set_for``), and the
  section is the state's reply::

      RR.OR0000000                       reply key . answering ORI (the state's ``ori``)
      1500 11032026 00042                time and date received, input sequence
      1500 11032026 00007 OR9990100      time and date sent, output sequence, requesting ORI
      *CTL0000001                        only when the inquiry had a control field
      TXT
      MKE/VEHICLE REGISTRATION           a hit block per record (lems.files.replies.hit_block, without
      LIC/TEST123                        the IMMED CONFIRM line for the inquiry-only data sets)
      ...
      NO RECORD LIC/TEST123              instead, when nothing matched

* The 9-character ORI a state answers as (``OR0000000``): the same as its code.
* ``NL``: every configured state in route-table order, each its own section as
  above (a state already answered earlier in the same message is not repeated),
  then the summary (lems.files.replies.nl_summary) of which states answered, had hits,
  had none, or did not answer.  Refused for single-state keys (``max_dests = 1``,
  KQ): ``.01.``.
* Any other ORI: the inquiry is carried to that agency's terminals like an AM
  (``Delivery.deliver_to_agency``; queued when none is connected, and the sender
  then also gets the ``S`` ``.02.`` notice).  The destination receives a ``U``
  frame ``RQ.<sender ORI>.<dest>``, ``*CONTROL``, ``TXT``, the fields.  The
  sender's section is ``RQ ACCEPTED FOR <dest>``, ``*CONTROL``, and the
  outcome line (``OR9990200 DELIVERED`` / ``QUEUED - NOT CONNECTED, WILL
  FORWARD`` / ``SENT THROUGH NLETS``).
* Anything else, a state code the route table does not have, or an ORI that
  takes no traffic: one line, the code and a reason naming the destination (``.01. XX NOT A
  CONFIGURED STATE - DESTINATION DOES NOT ACCEPT RQ``; ``.04.`` for an agency on
  remove status or a full queue).
* A state whose handler raises: ``.30. <state> <name> FILE HANDLER UNAVAILABLE
  OR FAILED - NO ANSWER``; in an NL summary it is listed under NO ANSWER.

When no destination answered or took the message, the whole reply is one ``E``
frame with the first refusal's code (several refusals are joined in its reason).

Sequence numbers in the header (both printed as five digits, modulo 100000):

* input sequence: the audit journal's sequence number of this input's ``in``
  record (the newest journal record when the router runs, as for the
  dissemination log), so the header leads straight to the journal;
* output sequence: the OSN the reply frame itself carries (the number
  ``Store.peek_osn``: what ``next_osn`` will give the requesting terminal next, after any
  delivery this message caused), so it matches bytes 0-4 of the output header.
  Every section of one frame shows the same number.

Times are the switch clock's UTC time (as the output header's TS), ``HHMM
MMDDCCYY``; received is taken when routing starts, sent when the reply is made.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from lems.base.errors import Reject
from lems.base.events import PRIORITY_ORDINARY, Outcome, Transaction
from lems.files import replies
from lems.wire.message import Message, Record

if TYPE_CHECKING:  # pragma: no cover
    from lems.traffic.delivery import Plan
    from lems.traffic.routes import Routing, StateRoute

log = structlog.get_logger("lems.traffic.nlets")

NATIONWIDE = "NL"


@attrs.frozen
class StateAnswer:
    """What one state said: its hit lines, or ``failed`` when its handler raised."""

    state: StateRoute
    body: tuple[str, ...] = ()
    hit: bool = False
    failed: bool = False

    @property
    def outcome(self) -> bool | None:
        """For ``replies.nl_summary``: True hit, False no record, None no answer."""
        return None if self.failed else self.hit


@attrs.frozen
class Refusal:
    dest: str
    reject: Reject

    def lines(self) -> list[str]:
        return [f"{self.reject.code} {self.reject.reason}"]


@attrs.frozen
class Delivered:
    """An inquiry carried to an agency's terminals."""

    dest: str
    line: str


@attrs.frozen
class Summary:
    answers: tuple[StateAnswer, ...]


Part = StateAnswer | Refusal | Delivered | Summary


class NletsInquiry:
    """The route step for an Nlets-family inquiry key (RQ, DQ, KQ, IQ, FQ, AQ, BQ, CPQ)."""

    def __init__(self, routing: "Routing") -> None:
        self.routing = routing

    def __call__(self, txn: Transaction) -> Outcome:
        """An ``R`` outcome whose sections print the reply's own OSN, or a ``Reject``."""
        msg, spec = txn.message, txn.spec
        states = self.routing.table.states
        by_ori = {s.ori: s for s in states.values()}
        answers: dict[str, StateAnswer] = {}   # by state code: each state is asked once per message
        shown: set[str] = set()                # states whose section is already in the reply
        parts: list[Part] = []
        queued: list[str] = []
        plan = self.routing.courier.plan(txn.registry, txn.presence)

        def answer(state: StateRoute) -> StateAnswer:
            if state.code not in answers:
                answers[state.code] = self._ask(txn, state)
            return answers[state.code]

        def show(state: StateRoute) -> None:
            found = answer(state)
            if state.code not in shown:
                shown.add(state.code)
                parts.append(found)

        for dest in msg.dests:
            if dest == NATIONWIDE:
                if spec.max_dests == 1:
                    parts.append(Refusal(dest, Reject(".01.", f"NL - {msg.mke} IS A SINGLE STATE INQUIRY, "
                                                              "NAME ONE STATE")))
                elif not states:
                    parts.append(Refusal(dest, Reject(".01.", "NL - NO STATE IS CONFIGURED ON THIS SWITCH")))
                else:
                    for state in states.values():
                        show(state)
                    parts.append(Summary(tuple(answers[code] for code in states)))
            elif dest in states:
                show(states[dest])
            elif dest in by_ori:
                show(by_ori[dest])
            elif len(dest) == 2:
                parts.append(Refusal(dest, Reject(".01.", f"{dest} NOT A CONFIGURED STATE - DESTINATION DOES NOT "
                                                          f"ACCEPT {msg.mke}")))
            elif len(dest) == 9:
                parts.append(self._carry(txn, plan, dest, queued))
            else:
                parts.append(Refusal(dest, Reject(".01.", f"{dest} IS NOT A STATE CODE, NL OR AN ORI - "
                                                          f"DESTINATION DOES NOT ACCEPT {msg.mke}")))

        if not any(isinstance(p, Delivered) or (isinstance(p, StateAnswer) and not p.failed) for p in parts):
            raise _first_refusal(msg, parts)
        if queued:
            plan.queued_notice(txn, queued)
        sent = self.routing.clock.now()

        def render(output_seq: int) -> str:
            # The reply prints its own OSN: numbered after the notices above went out.
            sections = [_render(p, msg, spec, txn.received, txn.input_seq, sent, output_seq) for p in parts]
            return "\n\n".join("\n".join(lines) for lines in sections)

        return plan.outcome("R", render=render)

    # -- one destination --------------------------------------------------------------------

    def _ask(self, txn: Transaction, state: StateRoute) -> StateAnswer:
        """Ask a state's handler; any exception (or a record the switch cannot show) is no answer."""
        msg, spec = txn.message, txn.spec
        record_set = state.set_for(spec.file)
        try:
            records: Sequence[Record] = self.routing.timed(self.routing.handlers[state.handler].inquire, msg,
                                                           spec.file, record_set)
            body: list[str] = []
            for record in records:
                body += self._hit_block(txn, record)
        except Exception as exc:  # noqa: BLE001 - a plug-in's failure is a .30. section, not a dead switch
            log.error("state handler failed", state=state.code, handler=state.handler, file=spec.file,
                      record_set=record_set, error=repr(exc))
            return StateAnswer(state, failed=True)
        if not body:
            return StateAnswer(state, (replies.nlets_no_record(msg, spec),))
        return StateAnswer(state, tuple(body), hit=True)

    def _hit_block(self, txn: Transaction, record: Record) -> list[str]:
        file = self.routing.codec.file(record.file)
        # A registration, licence or history is not a hot record: no IMMED CONFIRM line
        # for the inquiry-only data sets (files without a NIC letter).
        return replies.hit_block(record, file, txn.registry.agency_name(record.ori), confirm=file.letter is not None)

    def _carry(self, txn: Transaction, plan: "Plan", dest: str, queued: list[str]) -> Part:
        """An ORI destination: deliver to the agency's terminals, as an AM is."""
        msg = txn.message
        problem = self.routing.courier.destination_problem(txn.registry, dest, msg.mke)
        if problem is not None:
            return Refusal(dest, problem)
        outcome = plan.to_agency(dest, "U", replies.nlets_carried(msg, dest), PRIORITY_ORDINARY)
        if not outcome.reached:
            return Refusal(dest, Reject(".04.", f"{dest} QUEUE FULL FOR {' '.join(outcome.full)}, MESSAGE NOT QUEUED"))
        if outcome.queued and not outcome.delivered:
            queued.append(dest)
        return Delivered(dest, outcome.line())


def _first_refusal(msg: Message, parts: list[Part]) -> Reject:
    refusals = []  # in destination order
    for p in parts:
        if isinstance(p, Refusal):
            refusals.append(p)
        elif isinstance(p, StateAnswer) and p.failed:
            refusals.append(Refusal(p.state.code, Reject(".30.", _failed_reason(p.state))))
    if not refusals:  # pragma: no cover - every destination makes a part
        return Reject(".01.", f"NO DESTINATION TAKES {msg.mke}")
    if len(refusals) == 1:
        return refusals[0].reject
    return Reject(refusals[0].reject.code, "; ".join(f"{r.reject.code} {r.reject.reason}" for r in refusals))


def _failed_reason(state: StateRoute) -> str:
    return replies.nlets_no_answer(state.code, state.name)


# -- the reply text ------------------------------------------------------------------------------


def _render(part: Part, msg: Message, spec: Any, received: dt.datetime, input_seq: int, sent: dt.datetime,
            output_seq: int) -> list[str]:
    if isinstance(part, StateAnswer):
        if part.failed:
            return [f".30. {_failed_reason(part.state)}"]
        return replies.nlets_header(spec.reply or msg.mke, part.state.ori, received, input_seq, sent, output_seq,
                                    msg.ori, msg.control) + list(part.body)
    if isinstance(part, Summary):
        return replies.nl_summary({a.state.code: a.outcome for a in part.answers})
    if isinstance(part, Delivered):
        return replies.nlets_carried_ack(msg, part.dest, part.line)
    return part.lines()

